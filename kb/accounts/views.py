"""Sign-in page: Django's LoginView with throttling in front of the password check."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse
from django.utils.translation import ngettext

from kb.accounts.throttle import refusal_reason
from kb.audit import context
from kb.audit.models import AuditRecord
from kb.audit.trail import record


class ThrottledLoginView(LoginView):
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        username = str(request.POST.get("username", ""))[:150]
        reason = refusal_reason(username, context.current().ip)
        if not reason:
            return super().post(request, *args, **kwargs)
        record(
            "auth.login_throttled",
            outcome=AuditRecord.Outcome.DENIED,
            actor_name=username,
            details={"limit": reason},
        )
        # An unbound form: binding it would run the password check this refusal prevents.
        form = self.get_form_class()(request, initial={"username": username})
        minutes = settings.LOGIN_FAILURE_WINDOW_SECONDS // 60
        # One sentence per reason, so that each language can word it whole.
        if reason == "account":
            message = ngettext(
                "Too many failed sign-ins from this account. Try again in %(minutes)d minute, "
                "or ask your administrator.",
                "Too many failed sign-ins from this account. Try again in %(minutes)d minutes, "
                "or ask your administrator.",
                minutes,
            )
        else:
            message = ngettext(
                "Too many failed sign-ins from this address. Try again in %(minutes)d minute, "
                "or ask your administrator.",
                "Too many failed sign-ins from this address. Try again in %(minutes)d minutes, "
                "or ask your administrator.",
                minutes,
            )
        message %= {"minutes": minutes}
        response = self.render_to_response(self.get_context_data(form=form, throttled=message))
        response.status_code = 429
        return response
