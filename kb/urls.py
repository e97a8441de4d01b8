from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from kb.accounts.views import ThrottledLoginView

urlpatterns = [
    path("login/", ThrottledLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("oidc/", include("kb.accounts.oidc_urls")),
    path("admin/", admin.site.urls),
    path("audit/", include("kb.audit.urls")),
    path("departments/", include("kb.accounts.urls")),
    path("", include("kb.portal.urls")),
]
