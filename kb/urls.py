from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.views.defaults import page_not_found, server_error

from kb.accounts.views import ThrottledLoginView
from kb.api import pages as api_pages
from kb.api.problems import api_not_found, api_server_error

urlpatterns = [
    path("login/", ThrottledLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("oidc/", include("kb.accounts.oidc_urls")),
    path("admin/", admin.site.urls),
    path("audit/", include("kb.audit.urls")),
    path("departments/", include("kb.accounts.urls")),
    path("api/", include("kb.api.urls")),
    path("integrations/", api_pages.integrations, name="integrations"),
    path("integrations/<int:token_id>/revoke/", api_pages.revoke, name="integrations_revoke"),
    path("glossary/", include("kb.glossary.urls")),
    path("usage/", include("kb.usage.urls")),
    path("routing/", include("kb.routing.urls")),
    path("i18n/", include("django.conf.urls.i18n")),  # set_language: the header's switch
    path("", include("kb.ops.urls")),  # health, readiness, metrics
    path("", include("kb.portal.urls")),
]


def handler404(request: HttpRequest, exception: Exception) -> HttpResponse:
    """API clients get problem details; browsers get the portal's page."""
    if request.path.startswith("/api/"):
        return api_not_found(request, exception)
    return page_not_found(request, exception)


def handler500(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return api_server_error(request)
    return server_error(request)
