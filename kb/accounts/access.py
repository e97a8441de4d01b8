"""Who may read what. Decided on the server from memberships, never from request input."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q, QuerySet

from ingest.index import AccessScope
from kb.accounts.models import Department, Membership
from kb.library.models import Collection, Document

AnyUser = AbstractBaseUser | AnonymousUser


def member_department_ids(user: AnyUser) -> set[int]:
    if not user.is_authenticated or not user.is_active:
        return set()
    return set(Membership.objects.filter(user_id=user.pk).values_list("department_id", flat=True))


def readable_collections(user: AnyUser) -> QuerySet[Collection]:
    """Collections of the user's departments, plus company-wide ones."""
    if not user.is_authenticated or not user.is_active:
        return Collection.objects.none()
    departments = member_department_ids(user)
    return Collection.objects.filter(
        Q(department_id__in=departments) | Q(visibility=Collection.Visibility.COMPANY)
    )


def access_scope_for(user: AnyUser) -> AccessScope:
    """The filter that goes inside every index query made for this user."""
    return AccessScope(frozenset(readable_collections(user).values_list("id", flat=True)))


def readable_documents(user: AnyUser) -> QuerySet[Document]:
    return Document.objects.filter(collection__in=readable_collections(user))


def curated_departments(user: AnyUser) -> QuerySet[Department]:
    """Departments in which the user may upload (curators and department admins)."""
    if not user.is_authenticated or not user.is_active:
        return Department.objects.none()
    return Department.objects.filter(
        memberships__user_id=user.pk,
        memberships__role__in=[Membership.Role.CURATOR, Membership.Role.DEPARTMENT_ADMIN],
    )


def can_upload_to(user: AnyUser, collection: Collection) -> bool:
    return curated_departments(user).filter(pk=collection.department_id).exists()
