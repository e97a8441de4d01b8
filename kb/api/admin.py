from django.contrib import admin
from django.http import HttpRequest

from kb.api.models import ApiToken, ServiceAccount, Webhook


@admin.register(ServiceAccount)
class ServiceAccountAdmin(admin.ModelAdmin):
    list_display = ["user", "description", "created_at"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are created with `manage.py api_token create` (the secret is shown once there);
    here they are listed, narrowed and revoked (set "revoked at")."""

    list_display = [
        "prefix",
        "account",
        "name",
        "actions",
        "expires_at",
        "revoked_at",
        "last_used_at",
    ]
    list_filter = ["account"]
    readonly_fields = [
        "prefix",
        "secret_sha256",
        "created_by",
        "created_at",
        "last_used_at",
        "replaced_by",
    ]
    filter_horizontal = ["departments", "collections"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = ["url", "account", "events", "is_active"]
