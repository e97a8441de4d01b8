"""/oidc/authenticate/ starts a company sign-in; /oidc/callback/ is where the provider sends
the person back (register that URL with the provider)."""

from django.urls import path
from mozilla_django_oidc.views import OIDCAuthenticationRequestView

from kb.accounts.oidc_views import CompanySignInCallbackView, only_when_enabled

urlpatterns = [
    path(
        "authenticate/",
        only_when_enabled(OIDCAuthenticationRequestView.as_view()),
        name="oidc_authentication_init",
    ),
    path(
        "callback/",
        only_when_enabled(CompanySignInCallbackView.as_view()),
        name="oidc_authentication_callback",
    ),
]
