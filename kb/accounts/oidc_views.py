"""The OpenID Connect sign-in views: mozilla-django-oidc's, answering 404 while OpenID Connect
is off, and ending every failed sign-in on the sign-in page with a message instead of an
error page."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps

import requests
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import resolve_url
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView

from kb.accounts.backends import company_sign_in_enabled

logger = logging.getLogger(__name__)

View = Callable[..., HttpResponse]


def only_when_enabled(view: View) -> View:
    @wraps(view)
    def guarded(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if not company_sign_in_enabled():
            raise Http404("company sign-in is not configured")
        return view(request, *args, **kwargs)

    return guarded


class CompanySignInCallbackView(OIDCAuthenticationCallbackView):  # type: ignore[misc]  # mozilla-django-oidc ships no type information
    def get(self, request: HttpRequest) -> HttpResponse:
        try:
            response: HttpResponse = super().get(request)
        except SuspiciousOperation as exc:
            # An unknown state (a replayed or forged callback, or a second tab's), a bad
            # signature or nonce: refused with a log line, never an error page.
            logger.warning("OpenID Connect sign-in refused: %s", exc)
            return self.login_failure()
        except requests.RequestException as exc:
            logger.warning("the OpenID Connect provider could not be used: %s", exc)
            return self.login_failure()
        return response

    def login_failure(self) -> HttpResponse:
        messages.error(
            self.request, "Signing in with your company account did not succeed. Try again."
        )
        return HttpResponseRedirect(resolve_url(settings.LOGIN_URL))
