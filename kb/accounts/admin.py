from django.contrib import admin
from django.http import HttpRequest

from kb.accounts.models import Department, DirectoryGroupMapping, Membership
from kb.audit.trail import denied


def _superadmins_only(request: HttpRequest) -> bool:
    # The admin site is for superadmins, who manage structure (departments, memberships,
    # collections, directory mappings). Department admins and curators work in the portal,
    # where every page is scoped to their departments.
    user = request.user
    allowed = bool(user.is_active and user.is_superuser)
    if not allowed and user.is_authenticated and not getattr(request, "_kb_admin_denied", False):
        request._kb_admin_denied = True  # type: ignore[attr-defined]  # once per request
        denied(("admin", "site"), reason="not a superadmin", path=request.path)
    return allowed


admin.site.has_permission = _superadmins_only  # type: ignore[method-assign]  # replacing the admin site's permission check is the intended hook


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0


@admin.register(Department)
class DepartmentAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "audit_retention_days", "legal_hold", "created_at"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "department", "role", "clearance", "source"]
    list_filter = ["department", "role", "clearance", "source"]
    list_select_related = ["user", "department"]


@admin.register(DirectoryGroupMapping)
class DirectoryGroupMappingAdmin(admin.ModelAdmin):
    list_display = ["group", "department", "grant", "clearance"]
    list_filter = ["department", "grant"]
