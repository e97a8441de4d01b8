"""The department pages, under /departments/ (kb/accounts/manage_views/)."""

from django.urls import URLPattern, path

from kb.accounts.manage_views import collections, departments, members

app_name = "accounts"

urlpatterns: list[URLPattern] = [
    path("", departments.department_list, name="departments"),
    path("<int:department_id>/members/", members.members, name="members"),
    path(
        "<int:department_id>/members/<int:membership_id>/",
        members.member_change,
        name="member_change",
    ),
    path(
        "<int:department_id>/members/<int:membership_id>/remove/",
        members.member_remove,
        name="member_remove",
    ),
    path(
        "<int:department_id>/collections/new/",
        collections.collection_new,
        name="collection_new",
    ),
    path(
        "<int:department_id>/collections/<int:collection_id>/settings/",
        collections.collection_settings,
        name="collection_settings",
    ),
]
