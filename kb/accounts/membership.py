"""Changing who belongs to a department, as what: the rules any caller applies (the department
pages in kb/accounts/manage_views/, and whatever else comes to manage members).

- The highest clearance someone may grant in a department is their own there (a superadmin:
  no limit): grant_cap.
- A department admin may not remove or demote themselves when nobody else would be left to
  manage the department: last_admin_problem, the one place this rule lives. It locks the
  department's admin rows, so two admins stepping down at the same moment cannot both pass.

Changes are ordinary create()/save()/delete() calls, so the audit signals
(kb/audit/signals.py) record each one exactly once; nothing here writes those records itself.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils.translation import gettext, gettext_noop

from kb.accounts.access import AnyUser
from kb.accounts.models import Department, Membership

# Short role names for tables ("Curator"); the model's labels explain more. Marked here,
# translated where they are used (gettext).
ROLE_NAMES: dict[str, str] = {
    Membership.Role.MEMBER: gettext_noop("Member"),
    Membership.Role.CURATOR: gettext_noop("Curator"),
    Membership.Role.DEPARTMENT_ADMIN: gettext_noop("Department admin"),
}
# The same in a sentence ("gus is now a curator of Finance"): lower case in English, and a
# separate message so that each language can word it as it needs.
ROLE_IN_SENTENCE: dict[str, str] = {
    Membership.Role.MEMBER: gettext_noop("member"),
    Membership.Role.CURATOR: gettext_noop("curator"),
    Membership.Role.DEPARTMENT_ADMIN: gettext_noop("department admin"),
}


class LastAdminError(Exception):
    """The change would leave the department without an admin; str() says so to the person."""


def role_name(role: str) -> str:
    return gettext(ROLE_NAMES[role]) if role in ROLE_NAMES else ""


def grant_cap(user: AnyUser, department: Department) -> int | None:
    """The highest clearance this person may grant in the department: their own there, or no
    limit for a superadmin."""
    if getattr(user, "is_superuser", False):
        return None
    own = Membership.objects.filter(user_id=int(user.pk or 0), department=department).first()
    return own.clearance if own is not None else 0


def department_members(department: Department) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(department=department)
        .select_related("user", "department")
        .order_by("user__username")
    )


def add_member(department: Department, user_id: int, *, role: str, clearance: int) -> bool:
    """Add a locally managed membership; False when someone else added the same person
    between the form's check and the insert (the unique constraint, not a crash)."""
    try:
        with transaction.atomic():
            Membership.objects.create(
                user_id=user_id,
                department=department,
                role=role,
                clearance=clearance,
                source=Membership.Source.LOCAL,
            )
    except IntegrityError:
        return False
    return True


def last_admin_problem(actor_id: int, membership: Membership, *, staying_admin: bool) -> str | None:
    """Why `actor_id` may not remove or demote `membership` (None: they may). Only a
    department admin's own membership is guarded, and only when no other admin of the
    department would remain.

    Call inside a transaction and make the change in that same transaction: the admins' rows
    stay locked until it ends, so of two admins stepping down at the same moment the second
    waits, then sees the first one gone and is refused. (Outside a transaction the lock is
    refused: Django raises TransactionManagementError.)"""
    if membership.user_id != actor_id or staying_admin:
        return None
    if membership.role != Membership.Role.DEPARTMENT_ADMIN:
        return None
    admins = list(
        Membership.objects.select_for_update()
        .filter(department_id=membership.department_id, role=Membership.Role.DEPARTMENT_ADMIN)
        .values_list("pk", flat=True)
    )
    if admins != [membership.pk]:
        return None
    return gettext(
        "You are the last department admin of %(department)s: make someone else a department "
        "admin first, so that the department keeps someone to manage it."
    ) % {"department": membership.department.name}


def change_member(actor_id: int, membership: Membership, *, role: str, clearance: int) -> bool:
    """Give a membership a new role and clearance, as `actor_id`; True when anything changed
    (`membership` then holds the new values). Raises LastAdminError, changing nothing."""
    with transaction.atomic():
        problem = last_admin_problem(
            actor_id, membership, staying_admin=role == Membership.Role.DEPARTMENT_ADMIN
        )
        changed = problem is None and (role, clearance) != (membership.role, membership.clearance)
        if changed:
            membership.role, membership.clearance = role, clearance
            membership.save(update_fields=["role", "clearance"])
    if problem is not None:
        raise LastAdminError(problem)
    return changed


def remove_member(actor_id: int, membership: Membership) -> None:
    """Remove a membership, as `actor_id`. Raises LastAdminError, removing nothing."""
    with transaction.atomic():
        problem = last_admin_problem(actor_id, membership, staying_admin=False)
        if problem is None:
            membership.delete()
    if problem is not None:
        raise LastAdminError(problem)
