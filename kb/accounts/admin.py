from django.contrib import admin

from kb.accounts.models import Department, Membership


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0


@admin.register(Department)
class DepartmentAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "department", "role"]
    list_filter = ["department", "role"]
    list_select_related = ["user", "department"]
