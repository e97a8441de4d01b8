"""The membership rules where they live (kb/accounts/membership.py), called directly: the
last department admin of a department cannot remove or demote themselves, and two admins
stepping down at the same moment cannot both pass (the admins' rows are locked)."""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth.models import User
from django.db import connection, connections, transaction
from django.db.transaction import TransactionManagementError

from kb.accounts.membership import (
    LastAdminError,
    change_member,
    last_admin_problem,
    remove_member,
)
from kb.accounts.models import Clearance, Department, Membership

ADMIN = Membership.Role.DEPARTMENT_ADMIN


def admin_of(department: Department, name: str) -> Membership:
    user = User.objects.create_user(name, password=f"{name}-password-1")
    return Membership.objects.create(user=user, department=department, role=ADMIN)


@pytest.mark.django_db
def test_only_the_last_admin_stepping_down_is_refused(
    departments: dict[str, Department], frank: User
) -> None:
    finance = departments["finance"]
    dana = admin_of(finance, "dana")
    member = Membership.objects.get(user=frank)
    with transaction.atomic():
        problem = last_admin_problem(dana.user_id, dana, staying_admin=False)
        assert problem is not None and "last department admin of Finance" in problem
        # Staying an admin (a new clearance, say) is not stepping down.
        assert last_admin_problem(dana.user_id, dana, staying_admin=True) is None
        # Someone else acting (a superadmin, who is no member) is not guarded by this rule.
        assert last_admin_problem(frank.pk, dana, staying_admin=False) is None
        # Nor is a membership that is not an admin's.
        assert last_admin_problem(frank.pk, member, staying_admin=False) is None

    other = admin_of(finance, "gus")
    with transaction.atomic():
        assert last_admin_problem(dana.user_id, dana, staying_admin=False) is None
        assert last_admin_problem(other.user_id, other, staying_admin=False) is None


@pytest.mark.django_db
def test_change_and_remove_apply_the_rule_and_change_nothing_when_refused(
    departments: dict[str, Department],
) -> None:
    dana = admin_of(departments["finance"], "dana")
    with pytest.raises(LastAdminError, match="last department admin of Finance"):
        change_member(dana.user_id, dana, role=Membership.Role.CURATOR, clearance=1)
    with pytest.raises(LastAdminError, match="last department admin of Finance"):
        remove_member(dana.user_id, dana)
    dana.refresh_from_db()
    assert (dana.role, dana.clearance) == (ADMIN, Clearance.INTERNAL)
    # A new clearance is no stepping down: it is saved, and saving it again changes nothing.
    assert change_member(dana.user_id, dana, role=ADMIN, clearance=Clearance.SECRET) is True
    assert change_member(dana.user_id, dana, role=ADMIN, clearance=Clearance.SECRET) is False
    dana.refresh_from_db()
    assert dana.clearance == Clearance.SECRET


@pytest.mark.django_db(transaction=True)
def test_the_rule_needs_a_transaction_for_its_lock(departments: dict[str, Department]) -> None:
    # Without one the lock would end with the query and the check would guard nothing.
    dana = admin_of(departments["finance"], "dana")
    with pytest.raises(TransactionManagementError):
        last_admin_problem(dana.user_id, dana, staying_admin=False)


def _waiting_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        # Inside a transaction the activity view is read once and kept: read it afresh.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        row = cursor.fetchone()
    return bool(row and row[0])


@pytest.mark.django_db(transaction=True)
def test_two_admins_stepping_down_at_once_leave_one(departments: dict[str, Department]) -> None:
    finance = departments["finance"]
    first, second = admin_of(finance, "dana"), admin_of(finance, "gus")
    outcome: dict[str, object] = {}

    def second_steps_down() -> None:
        try:
            remove_member(second.user_id, Membership.objects.get(pk=second.pk))
            outcome["second"] = "removed"
        except LastAdminError as refused:
            outcome["second"] = str(refused)
        except BaseException as exc:
            outcome["second"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=second_steps_down)
    with transaction.atomic():
        # The first admin passes the check (there are two) and holds the admins' rows...
        assert last_admin_problem(first.user_id, first, staying_admin=False) is None
        thread.start()
        # ...so the second one's check waits for this transaction, however long it takes.
        # Waiting for the wait (not for a time) makes sure the lock is what is tested.
        while thread.is_alive() and not _waiting_on_a_lock():
            thread.join(0.05)
        assert thread.is_alive(), outcome
        first.delete()
    thread.join()
    # Once the first admin is gone, the second one is the last and is refused.
    assert isinstance(outcome["second"], str)
    assert "last department admin of Finance" in outcome["second"]
    assert list(Membership.objects.filter(department=finance, role=ADMIN)) == [second]
