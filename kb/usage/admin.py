from django.contrib import admin

from kb.usage.models import DepartmentQuota, UsageRecord


@admin.register(DepartmentQuota)
class DepartmentQuotaAdmin(admin.ModelAdmin):
    list_display = ["department", "soft_limit_tokens", "hard_limit_tokens", "updated_at"]
    list_select_related = ["department"]


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    """Read only: the meter is written by the answer path and nothing else."""

    list_display = [
        "created_at",
        "user_name",
        "department_name",
        "api_token_prefix",
        "kind",
        "mode",
        "endpoint",
        "prompt_tokens",
        "completion_tokens",
        "gpu_seconds",
    ]
    list_filter = ["kind", "mode", "on_premises", "department"]

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False
