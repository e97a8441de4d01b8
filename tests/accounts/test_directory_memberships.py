"""Directory groups -> memberships (kb/accounts/directory.py), without a directory server:
the LDAP and OpenID Connect sign-in tests drive the same function through real servers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.db.models.signals import post_delete, post_save

from kb.accounts.access import is_auditor
from kb.accounts.directory import group_match_keys, sync_directory_memberships
from kb.accounts.models import AUDITORS_GROUP, Clearance, Department, DirectoryGroupMapping
from kb.accounts.models import Membership as M

FINANCE_DN = "cn=Finance,ou=Groups,dc=corp,dc=example"


@pytest.fixture
def dana(db: None) -> User:
    return User.objects.create_user("dana", password="dana-password-1")


def memberships(user: User) -> dict[str, tuple[str, int, str]]:
    return {
        m.department.slug: (m.role, m.clearance, m.source)
        for m in M.objects.filter(user=user).select_related("department")
    }


@pytest.fixture
def membership_changes() -> Iterator[list[tuple[str, str]]]:
    """Every Membership save and delete, as the audit trail's signal handlers see them."""
    changes: list[tuple[str, str]] = []

    def saved(sender: type[M], instance: M, created: bool, **kwargs: Any) -> None:
        changes.append(("created" if created else "updated", instance.department.slug))

    def deleted(sender: type[M], instance: M, **kwargs: Any) -> None:
        changes.append(("deleted", instance.department.slug))

    post_save.connect(saved, sender=M, dispatch_uid="test-membership-saved")
    post_delete.connect(deleted, sender=M, dispatch_uid="test-membership-deleted")
    yield changes
    post_save.disconnect(dispatch_uid="test-membership-saved", sender=M)
    post_delete.disconnect(dispatch_uid="test-membership-deleted", sender=M)


def test_a_dn_is_known_by_its_normalised_self_and_its_first_rdn_value() -> None:
    assert group_match_keys("CN=Finance, OU=Groups,DC=corp,DC=example") == {
        "cn=finance,ou=groups,dc=corp,dc=example",
        "finance",
    }
    assert group_match_keys(r"cn=Smith\, John,ou=Groups") == {
        r"cn=smith\, john,ou=groups",
        "smith, john",
    }
    # OpenID Connect claim values are not DNs: matched as they are.
    assert group_match_keys("Finance Team") == {"finance team"}
    assert group_match_keys("/finance") == {"/finance"}
    assert group_match_keys("  ") == set()


def test_groups_map_case_insensitively_by_dn_or_short_name_and_the_highest_grant_wins(
    departments: dict[str, Department], dana: User
) -> None:
    finance, engineering = departments["finance"], departments["engineering"]
    DirectoryGroupMapping.objects.create(group="finance", department=finance)
    DirectoryGroupMapping.objects.create(
        group="cn=FINANCE-LEADS,ou=groups,dc=corp,dc=example",
        department=finance,
        grant=DirectoryGroupMapping.Grant.CURATOR,
        clearance=Clearance.INTERNAL,
    )
    DirectoryGroupMapping.objects.create(
        group="controllers",
        department=finance,
        grant=DirectoryGroupMapping.Grant.MEMBER,
        clearance=Clearance.SECRET,
    )
    DirectoryGroupMapping.objects.create(group="Engineering", department=engineering)
    DirectoryGroupMapping.objects.create(group="unrelated", department=engineering)

    sync_directory_memberships(
        dana,
        [
            FINANCE_DN,
            "cn=finance-leads, ou=Groups, dc=corp, dc=example",
            "cn=Controllers,ou=elsewhere,dc=corp,dc=example",
            "ENGINEERING",
        ],
    )

    assert memberships(dana) == {
        # curator from finance-leads, secret from controllers: one row with the best of both
        "finance": (M.Role.CURATOR, Clearance.SECRET, M.Source.DIRECTORY),
        "engineering": (M.Role.MEMBER, Clearance.INTERNAL, M.Source.DIRECTORY),
    }


def test_directory_memberships_follow_the_groups_and_local_ones_are_never_touched(
    departments: dict[str, Department], dana: User, membership_changes: list[tuple[str, str]]
) -> None:
    finance, engineering = departments["finance"], departments["engineering"]
    legal = Department.objects.create(name="Legal", slug="legal")
    DirectoryGroupMapping.objects.create(group="finance", department=finance)
    DirectoryGroupMapping.objects.create(
        group="finance-leads", department=finance, grant=DirectoryGroupMapping.Grant.CURATOR
    )
    DirectoryGroupMapping.objects.create(
        group="engineering",
        department=engineering,
        grant=DirectoryGroupMapping.Grant.DEPARTMENT_ADMIN,
    )
    DirectoryGroupMapping.objects.create(group="legal", department=legal)
    M.objects.create(user=dana, department=legal, role=M.Role.CURATOR, clearance=Clearance.PUBLIC)
    membership_changes.clear()

    sync_directory_memberships(dana, ["finance", "finance-leads", "engineering", "legal"])
    assert memberships(dana) == {
        "finance": (M.Role.CURATOR, Clearance.INTERNAL, M.Source.DIRECTORY),
        "engineering": (M.Role.DEPARTMENT_ADMIN, Clearance.INTERNAL, M.Source.DIRECTORY),
        # managed here: the directory's "legal" group neither changes nor duplicates it
        "legal": (M.Role.CURATOR, Clearance.PUBLIC, M.Source.LOCAL),
    }
    assert sorted(membership_changes) == [("created", "engineering"), ("created", "finance")]

    membership_changes.clear()
    sync_directory_memberships(dana, ["finance", "finance-leads", "engineering", "legal"])
    assert membership_changes == []  # nothing changed, nothing written

    sync_directory_memberships(dana, ["finance"])  # left finance-leads, engineering, legal
    assert memberships(dana) == {
        "finance": (M.Role.MEMBER, Clearance.INTERNAL, M.Source.DIRECTORY),
        "legal": (M.Role.CURATOR, Clearance.PUBLIC, M.Source.LOCAL),
    }
    assert sorted(membership_changes) == [("deleted", "engineering"), ("updated", "finance")]

    sync_directory_memberships(dana, [])
    assert memberships(dana) == {"legal": (M.Role.CURATOR, Clearance.PUBLIC, M.Source.LOCAL)}


def test_auditor_role_follows_the_directory_once_a_group_grants_it(dana: User) -> None:
    auditors = Group.objects.get_or_create(name=AUDITORS_GROUP)[0]
    dana.groups.add(auditors)  # made an auditor by hand

    # No mapping grants "auditor": the Auditors group is managed by hand only.
    sync_directory_memberships(dana, ["finance"])
    assert is_auditor(dana)

    DirectoryGroupMapping.objects.create(
        group="Internal Audit", grant=DirectoryGroupMapping.Grant.AUDITOR, department=None
    )
    sync_directory_memberships(dana, ["finance"])
    assert not is_auditor(dana)

    sync_directory_memberships(dana, ["cn=internal audit,ou=groups,dc=corp,dc=example"])
    assert is_auditor(dana)
    assert M.objects.filter(user=dana).count() == 0  # auditing grants no department


DNS = [
    "CN=Finance, OU=Groups,DC=corp",
    "cn = Fin ance ,ou=g",
    "cn=A\\,B,ou=x",
    "cn=Finance+uid=3,ou=g",
    "cn=\\46inance,ou=g",
    "cn=财务部,ou=groups",
    "cn=\\E8\\B4\\A2,ou=x",
    "cn=a\\ ,ou=b",
    "cn=a\\+b",
    "1.2.3=x",
    "Finance Team",
    "cn=x,",
    "finance",
]


@pytest.mark.parametrize("value", DNS)
def test_the_dn_rules_agree_with_and_without_python_ldap(value: str) -> None:
    # An OpenID Connect-only install has no python-ldap; its DN parsing must match.
    import ldap.dn

    from kb.accounts.directory import _parse_dn, dn_to_str, parse_dn

    with_ldap = parse_dn(value)
    assert _parse_dn(value) == with_ldap
    if with_ldap:
        expected = ldap.dn.dn2str([[(t, v, 1) for t, v in rdn] for rdn in with_ldap])
        assert dn_to_str(with_ldap) == expected
