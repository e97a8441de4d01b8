"""What every API view shares: the token's actions as the permission, the request's Reader,
and the count of each token's use."""

from __future__ import annotations

from typing import Any

from django.db.models import F
from django.utils import timezone
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from kb.accounts.access import Reader
from kb.answering.answers import Answer
from kb.api.authentication import TokenAuth
from kb.api.models import ApiToken, TokenUsage
from kb.api.scope import collection_ids, token_auth
from kb.audit.trail import denied
from kb.usage.meter import turn_tokens

# Reading collections and documents: any of the token's actions that reads.
READ_ACTIONS = (ApiToken.Action.SEARCH, ApiToken.Action.ASK, ApiToken.Action.INGEST)


class TokenAllows(BasePermission):
    """The token carries at least one of the view's actions."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if not isinstance(request.auth, TokenAuth):
            return False  # no Authorization header at all: DRF answers 401
        auth = token_auth(request)
        actions: tuple[str, ...] = getattr(view, "actions_required", ())
        if any(auth.token.allows(action) for action in actions):
            return True
        denied(auth.token, reason=f"token lacks the {'/'.join(actions)} action")
        self.message = f"This token may not do this (needs one of: {', '.join(actions)})."
        return False


class ApiView(APIView):
    permission_classes = [TokenAllows]
    actions_required: tuple[str, ...] = ()


def reader(request: Request) -> Reader:
    """Who this request acts as, and what it may read: the person's access narrowed by the
    token (kb/api/scope.py)."""
    return Reader(request.user, collection_ids(request))


def count_use(request: Request, action: str, answer: Answer | None = None) -> None:
    """One more call of this action by this token today (and the model tokens it used, as
    the usage meter counted them: the answer and the rewrite of a follow-up)."""
    auth = token_auth(request)
    prompt_tokens, completion_tokens = turn_tokens(answer.turn_id) if answer else (0, 0)
    row, _ = TokenUsage.objects.get_or_create(
        token=auth.token, day=timezone.now().date(), action=action
    )
    TokenUsage.objects.filter(pk=row.pk).update(
        requests=F("requests") + 1,
        prompt_tokens=F("prompt_tokens") + prompt_tokens,
        completion_tokens=F("completion_tokens") + completion_tokens,
    )
