"""Session rules beyond Django's defaults: an absolute lifetime, and immediate logout of
accounts that were deactivated (whichever backend signed them in)."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import SESSION_KEY, get_user_model, logout
from django.contrib.auth.signals import user_logged_in
from django.http import HttpRequest, HttpResponse

from kb.audit.trail import record

SIGNED_IN_AT = "kb_signed_in_at"


def remember_sign_in_time(sender: object, request: HttpRequest, **kwargs: object) -> None:
    request.session[SIGNED_IN_AT] = time.time()


user_logged_in.connect(remember_sign_in_time, dispatch_uid="kb-session-signed-in-at")


class SessionPolicyMiddleware:
    """Ends the session (and audits why) when it is older than SESSION_ABSOLUTE_SECONDS, or
    when its account has been deactivated since. The idle timeout is Django's own
    (SESSION_COOKIE_AGE with SESSION_SAVE_EVERY_REQUEST)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if not user.is_authenticated and SESSION_KEY in request.session:
            # The session names an account that no longer signs in: every backend returns
            # no user for a deactivated (or deleted) account. End the session on the record.
            account = get_user_model().objects.filter(pk=request.session[SESSION_KEY]).first()
            record(
                "auth.session_ended",
                actor=account,
                actor_name="" if account else f"deleted user {request.session[SESSION_KEY]}",
                details={"reason": "account deactivated"},
            )
            request.session.flush()
        elif user.is_authenticated:
            started = request.session.get(SIGNED_IN_AT)
            reason = ""
            if not user.is_active:
                reason = "account deactivated"
            elif (
                started is None or time.time() - float(started) > settings.SESSION_ABSOLUTE_SECONDS
            ):
                reason = "absolute session lifetime reached"
            if reason:
                record("auth.session_ended", actor=user, details={"reason": reason})
                logout(request)
        return self.get_response(request)
