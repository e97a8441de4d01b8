"""Bearer tokens for integrations, and acting on behalf of an employee.

`Authorization: Bearer kbt_<prefix>.<secret>`. The request then runs as the token's service
account, narrowed to the token's departments / collections (kb/api/scope.py). With
`X-On-Behalf-Of: <username>` (the name exactly: no trimming) and the `on_behalf` right, it
runs as that employee instead: their memberships, clearances and conversations, still
narrowed to the token's departments / collections and limited to its actions (the
intersection: acting for someone never reaches past the token).
Every use is an audit record (`token.used`); every refusal an `access.denied` one.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from kb.api.models import ApiToken
from kb.audit.context import bind_user
from kb.audit.trail import denied, record

ON_BEHALF_HEADER = "HTTP_X_ON_BEHALF_OF"
# last_used_at is written at most this often per token: every use is in the audit trail
# already, the column is for the token list.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class TokenAuth:
    token: ApiToken
    on_behalf: bool  # the request runs as a named employee, within the token's narrowing


class TokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, TokenAuth] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, credentials = header.partition(" ")
        if scheme != self.keyword or not credentials.strip():
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <token>'.")
        token = self._token(credentials.strip(), request)
        user: Any = token.account.user
        # The name exactly as sent: "u_hr\t" is nobody, not u_hr (no trimming, no case
        # folding beyond the user model's own lookup, as at sign-in).
        on_behalf = str(request.META.get(ON_BEHALF_HEADER, ""))
        if on_behalf:
            if not token.allows(ApiToken.Action.ON_BEHALF):
                self._refuse(request, token, "token may not act on behalf of employees")
            employee = (
                get_user_model()
                .objects.filter(username=on_behalf, is_active=True, service_account__isnull=True)
                .first()
                # PostgreSQL refuses a NUL in a query: such a name is nobody, not an error.
                if on_behalf.isprintable()
                else None
            )
            if employee is None:
                self._refuse(request, token, "no active employee of that name")
            user = employee
        bind_user(user, via="api")
        record(
            "token.used",
            actor=user,
            target=token,
            details={
                "token": token.prefix,
                "account": token.account.user.get_username(),
                "on_behalf": bool(on_behalf),
                "method": request.method,
                "path": request.path[:300],
            },
        )
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return user, TokenAuth(token=token, on_behalf=bool(on_behalf))

    def _token(self, credentials: str, request: Request) -> ApiToken:
        prefix, _, secret = credentials.partition(".")
        token = (
            ApiToken.objects.select_related("account__user").filter(prefix=prefix).first()
            if prefix and secret
            else None
        )
        if token is None or not hmac.compare_digest(
            token.secret_sha256, ApiToken.hash_secret(secret)
        ):
            denied(("token", prefix[:16] or "-"), reason="unknown token or wrong secret")
            raise exceptions.AuthenticationFailed("The token is not valid.")
        if not token.is_usable:
            why = (
                "revoked"
                if token.revoked_at
                else "expired"
                if token.expires_at and token.expires_at <= timezone.now()
                else "account deactivated"
            )
            denied(token, reason=f"token {why}")
            raise exceptions.AuthenticationFailed(f"The token is {why}.")
        return token

    def _refuse(self, request: Request, token: ApiToken, reason: str) -> None:
        denied(token, reason=reason, on_behalf=str(request.META.get(ON_BEHALF_HEADER, ""))[:150])
        raise exceptions.PermissionDenied(f"Refused: {reason}.")

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'


class TokenAuthenticationScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]  # drf-spectacular's extension base is untyped
    """How the schema describes the token (a bearer scheme)."""

    target_class = "kb.api.authentication.TokenAuthentication"
    name = "bearerToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "bearerFormat": "kbt_<prefix>.<secret>"}
