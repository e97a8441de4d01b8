"""What department admins and curators manage, apart from members (kb/accounts/membership.py):
the overview of their departments, and a department's collections (who reads one, in words;
saving one's settings).

Who may manage what comes from kb/accounts/access.py, as everywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.db.models import Count
from django.utils.translation import gettext

from kb.accounts.access import (
    AnyUser,
    administered_departments,
    curated_departments,
    readable_collection_ids,
)
from kb.accounts.forms import CollectionForm
from kb.accounts.membership import role_name
from kb.accounts.models import Department, Membership
from kb.library.models import Collection


@dataclass
class DepartmentRow:
    department: Department
    membership: Membership | None
    may_admin: bool
    may_curate: bool
    collections: list[Collection] = field(default_factory=list)

    @property
    def role_name(self) -> str:
        return role_name(self.membership.role) if self.membership else ""


def managed_departments(user: AnyUser) -> list[DepartmentRow]:
    """The departments the person administers or curates, with what they manage in each;
    empty when they manage none."""
    administered = set(administered_departments(user).values_list("pk", flat=True))
    curated = set(curated_departments(user).values_list("pk", flat=True))
    if not administered and not curated:
        return []
    departments = Department.objects.filter(pk__in=administered | curated).annotate(
        member_count=Count("memberships", distinct=True),
        collection_count=Count("collections", distinct=True),
    )
    own = {m.department_id: m for m in Membership.objects.filter(user_id=int(user.pk or 0))}
    # Only the collections the person manages are listed: a curator does not even see the
    # names of collections classified above their clearance.
    managed = Collection.objects.filter(
        department_id__in=curated, pk__in=readable_collection_ids(user)
    ).order_by("name")
    by_department: dict[int, list[Collection]] = {}
    for collection in managed:
        by_department.setdefault(collection.department_id, []).append(collection)
    return [
        DepartmentRow(
            department=d,
            membership=own.get(d.pk),
            may_admin=d.pk in administered,
            may_curate=d.pk in curated,
            collections=by_department.get(d.pk, []),
        )
        for d in departments
    ]


def readers(collection: Collection) -> list[str]:
    """Who reads the collection, in words, as the access rule (kb/accounts/access.py) says."""
    level = collection.get_classification_display()
    if collection.visibility == Collection.Visibility.COMPANY:
        return [
            gettext("Everyone in the company whose highest clearance is %(level)s or above")
            % {"level": level}
        ]
    departments = [collection.department.name]
    if collection.visibility == Collection.Visibility.SHARED:
        departments += [d.name for d in collection.shared_with.all()]
    return [
        gettext("%(department)s members cleared to %(level)s or above")
        % {"department": name, "level": level}
        for name in departments
    ]


def save_collection(form: CollectionForm) -> Collection | None:
    """Save a valid form; None (and the error on the form) when another curator took the
    same name first (the unique constraint, not a crash)."""
    try:
        with transaction.atomic():
            collection: Collection = form.save()
    except IntegrityError:
        form.add_error("name", gettext("A collection of that name was just created."))
        return None
    return collection
