"""The department pages, under /departments/ (kb/accounts/manage_views.py)."""

from django.urls import URLPattern, path

from kb.accounts import manage_views

app_name = "accounts"

urlpatterns: list[URLPattern] = [
    path("", manage_views.department_list, name="departments"),
    path("<int:department_id>/members/", manage_views.members, name="members"),
    path(
        "<int:department_id>/members/<int:membership_id>/",
        manage_views.member_change,
        name="member_change",
    ),
    path(
        "<int:department_id>/members/<int:membership_id>/remove/",
        manage_views.member_remove,
        name="member_remove",
    ),
    path(
        "<int:department_id>/collections/new/",
        manage_views.collection_new,
        name="collection_new",
    ),
    path(
        "<int:department_id>/collections/<int:collection_id>/settings/",
        manage_views.collection_settings,
        name="collection_settings",
    ),
]
