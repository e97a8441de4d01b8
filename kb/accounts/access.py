"""Who may read and manage what. Decided on the server from memberships, never from request input.

The rule, in one place:
- a membership of department D cleared to level L reads D's collections classified up to L,
  and the collections shared with D classified up to L;
- company-wide collections are read by every active user up to their highest clearance
  (public only, for someone with no membership);
- superadmins and auditors get no content by their role: a superadmin manages structure, an
  auditor reads the audit trail. Either reads documents only through memberships.
Everything here is evaluated per request from the database, so removing a membership or
moving a collection takes effect on the very next request, with nothing re-embedded.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q, QuerySet

from ingest.index import AccessScope
from kb.accounts.models import AUDITORS_GROUP, Clearance, Department, Membership
from kb.library.models import Collection, Document

AnyUser = AbstractBaseUser | AnonymousUser


def _active(user: AnyUser) -> bool:
    return bool(user.is_authenticated and user.is_active)


def member_department_ids(user: AnyUser) -> set[int]:
    if not _active(user):
        return set()
    return set(
        Membership.objects.filter(user_id=int(user.pk or 0)).values_list("department_id", flat=True)
    )


def readable_collection_ids(user: AnyUser) -> frozenset[int]:
    if not _active(user):
        return frozenset()
    clearances = dict(
        Membership.objects.filter(user_id=int(user.pk or 0)).values_list(
            "department_id", "clearance"
        )
    )
    rule = Q(visibility=Collection.Visibility.COMPANY) & Q(
        classification__lte=max(clearances.values(), default=Clearance.PUBLIC)
    )
    for department_id, clearance in clearances.items():
        rule |= Q(department_id=department_id, classification__lte=clearance)
        rule |= Q(
            visibility=Collection.Visibility.SHARED,
            shared_with=department_id,
            classification__lte=clearance,
        )
    return frozenset(Collection.objects.filter(rule).values_list("id", flat=True).distinct())


@dataclass(frozen=True)
class Reader:
    """Who acts, and what they may read through the door they came in by: in the portal,
    everything their memberships allow (`reader_for`); through the REST API, that narrowed by
    the token (kb/api/scope.py). Every action that reads documents takes one of these, so
    both doors decide with the same rule over a different set."""

    user: AnyUser
    collection_ids: frozenset[int]

    @property
    def scope(self) -> AccessScope:
        """The filter that goes inside every index query made for this reader."""
        return AccessScope(self.collection_ids)

    def documents(self) -> QuerySet[Document]:
        return Document.objects.filter(collection_id__in=self.collection_ids)


def reader_for(user: AnyUser) -> Reader:
    return Reader(user, readable_collection_ids(user))


def readable_collections(user: AnyUser) -> QuerySet[Collection]:
    return Collection.objects.filter(pk__in=readable_collection_ids(user))


def access_scope_for(user: AnyUser) -> AccessScope:
    """The filter that goes inside every index query made for this user."""
    return reader_for(user).scope


def _departments_with_role(user: AnyUser, roles: list[str]) -> QuerySet[Department]:
    if not _active(user):
        return Department.objects.none()
    return Department.objects.filter(
        memberships__user_id=int(user.pk or 0), memberships__role__in=roles
    )


def curated_departments(user: AnyUser) -> QuerySet[Department]:
    """Departments whose collections the user manages (curators and department admins)."""
    return _departments_with_role(user, [Membership.Role.CURATOR, Membership.Role.DEPARTMENT_ADMIN])


def administered_departments(user: AnyUser) -> QuerySet[Department]:
    """Departments whose members the user manages: department admins, and superadmins for all."""
    if _active(user) and getattr(user, "is_superuser", False):
        return Department.objects.all()
    return _departments_with_role(user, [Membership.Role.DEPARTMENT_ADMIN])


def can_upload_to(user: AnyUser, collection: Collection) -> bool:
    """Curators manage the collections they can also read (a curator of a department is not
    thereby cleared for its secret collections)."""
    return curated_departments(user).filter(
        pk=collection.department_id
    ).exists() and collection.pk in readable_collection_ids(user)


def can_download(user: AnyUser, collection: Collection) -> bool:
    return collection.allow_download or can_upload_to(user, collection)


def is_auditor(user: AnyUser) -> bool:
    if not _active(user):
        return False
    return bool(
        getattr(user, "is_superuser", False) or user.groups.filter(name=AUDITORS_GROUP).exists()  # type: ignore[union-attr]  # an anonymous user has no groups, but is excluded above
    )
