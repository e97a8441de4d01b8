"""Signing in through a real OpenLDAP directory (slapd), with the settings an operator sets.

People sign in through the portal's own sign-in form; their directory groups become
department memberships (DirectoryGroupMapping) at every sign-in.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.test import Client
from pytest_django.fixtures import Settings

from kb.accounts.access import is_auditor
from kb.accounts.ldap_backend import DirectoryLDAPBackend
from kb.accounts.models import Clearance, Department, DirectoryGroupMapping, Membership
from kb.env import ConfigError
from kb.settings_sso import LDAP_BACKEND, sign_in_settings
from tests.ldap_server import (
    GROUPS_DN,
    PEOPLE_DN,
    SERVICE_DN,
    SERVICE_PASSWORD,
    LdapDirectory,
    running_slapd,
)
from tests.sign_in import configure_sign_in, set_sign_in_environment

pytestmark = pytest.mark.django_db

ALICE_PASSWORD = "alice-directory-password"
CAROL_PASSWORD = "carol-directory-password"


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[LdapDirectory]:
    with running_slapd(tmp_path / "slapd") as ldap_directory:
        ldap_directory.add_user("alice", ALICE_PASSWORD, given_name="Alice", surname="Archer")
        ldap_directory.add_user("carol", CAROL_PASSWORD, given_name="Carol", surname="Cole")
        ldap_directory.add_group("finance", ["alice"])
        ldap_directory.add_group("finance-leads", ["alice"])
        ldap_directory.add_group("internal-audit", ["carol"])
        yield ldap_directory


def directory_environment(directory: LdapDirectory) -> dict[str, str]:
    return {
        "LDAP_SERVER_URI": directory.uri,
        "LDAP_BIND_DN": SERVICE_DN,
        "LDAP_BIND_PASSWORD": SERVICE_PASSWORD,
        "LDAP_USER_SEARCH_BASE": PEOPLE_DN,
        "LDAP_GROUP_SEARCH_BASE": GROUPS_DN,
        "LDAP_GROUP_TYPE": "groupOfNames",
    }


@pytest.fixture
def directory_sign_in(
    directory: LdapDirectory, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> LdapDirectory:
    configure_sign_in(monkeypatch, settings, directory_environment(directory))
    return directory


@pytest.fixture
def finance_mappings(departments: dict[str, Department], directory: LdapDirectory) -> None:
    # By short name, and by full DN with different capitals than the directory returns.
    DirectoryGroupMapping.objects.create(
        group="finance", department=departments["finance"], clearance=Clearance.INTERNAL
    )
    DirectoryGroupMapping.objects.create(
        group=directory.group_dn("finance-leads").upper(),
        department=departments["finance"],
        grant=DirectoryGroupMapping.Grant.CURATOR,
        clearance=Clearance.CONFIDENTIAL,
    )


def sign_in(client: Client, username: str, password: str) -> bool:
    response = client.post("/login/", {"username": username, "password": password})
    if response.status_code == 302:
        assert response["Location"] == "/"
        return True
    assert response.status_code == 200
    assert "did not match" in response.content.decode()
    return False


def directory_memberships(username: str) -> dict[str, tuple[str, int, str]]:
    return {
        m.department.slug: (m.role, m.clearance, m.source)
        for m in Membership.objects.filter(user__username=username).select_related("department")
    }


@pytest.mark.usefixtures("finance_mappings")
def test_directory_member_signs_in_with_the_mapped_membership(
    directory_sign_in: LdapDirectory, client: Client
) -> None:
    assert sign_in(client, "alice", ALICE_PASSWORD)

    alice = User.objects.get(username="alice")
    assert (alice.first_name, alice.last_name, alice.email) == (
        "Alice",
        "Archer",
        "alice@corp.example",
    )
    assert not alice.has_usable_password()  # the directory holds the password, not the portal
    assert client.session["_auth_user_backend"] == LDAP_BACKEND
    # In finance (member, internal) and finance-leads (curator, confidential): the higher
    # role and the higher clearance.
    assert directory_memberships("alice") == {
        "finance": (Membership.Role.CURATOR, Clearance.CONFIDENTIAL, Membership.Source.DIRECTORY)
    }
    assert client.get("/").status_code == 200


@pytest.mark.usefixtures("finance_mappings")
def test_wrong_password_or_unknown_person_is_refused(
    directory_sign_in: LdapDirectory, client: Client
) -> None:
    assert not sign_in(client, "alice", "not-alices-password")
    assert not sign_in(client, "mallory", ALICE_PASSWORD)
    assert not User.objects.filter(username__in=["alice", "mallory"]).exists()
    assert client.get("/").status_code == 302


def test_leaving_a_directory_group_removes_its_membership_but_not_local_ones(
    directory_sign_in: LdapDirectory,
    finance_mappings: None,
    departments: dict[str, Department],
    client: Client,
) -> None:
    assert sign_in(client, "alice", ALICE_PASSWORD)
    alice = User.objects.get(username="alice")
    Membership.objects.create(
        user=alice, department=departments["engineering"], role=Membership.Role.MEMBER
    )
    client.logout()

    directory_sign_in.remove_member("finance-leads", "alice")
    assert sign_in(client, "alice", ALICE_PASSWORD)
    assert directory_memberships("alice") == {
        "finance": (Membership.Role.MEMBER, Clearance.INTERNAL, Membership.Source.DIRECTORY),
        "engineering": (Membership.Role.MEMBER, Clearance.INTERNAL, Membership.Source.LOCAL),
    }
    client.logout()

    directory_sign_in.remove_member("finance", "alice")
    assert sign_in(client, "alice", ALICE_PASSWORD)
    assert directory_memberships("alice") == {
        "engineering": (Membership.Role.MEMBER, Clearance.INTERNAL, Membership.Source.LOCAL),
    }


def test_a_group_mapped_to_auditor_makes_company_wide_auditors(
    directory_sign_in: LdapDirectory, client: Client
) -> None:
    DirectoryGroupMapping.objects.create(
        group="Internal-Audit", grant=DirectoryGroupMapping.Grant.AUDITOR, department=None
    )
    assert sign_in(client, "carol", CAROL_PASSWORD)
    carol = User.objects.get(username="carol")
    assert is_auditor(carol)
    assert directory_memberships("carol") == {}  # auditing grants no department
    client.logout()

    directory_sign_in.remove_member("internal-audit", "carol")
    assert sign_in(client, "carol", CAROL_PASSWORD)
    assert not is_auditor(carol)


@pytest.mark.usefixtures("finance_mappings")
def test_a_deactivated_person_cannot_sign_in_and_their_session_ends(
    directory_sign_in: LdapDirectory, client: Client
) -> None:
    assert sign_in(client, "alice", ALICE_PASSWORD)
    assert client.get("/").status_code == 200
    alice = User.objects.get(username="alice")

    alice.is_active = False
    alice.save(update_fields=["is_active"])

    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
    assert DirectoryLDAPBackend().get_user(alice.pk) is None
    # The directory still accepts the password; the portal does not.
    assert authenticate(None, username="alice", password=ALICE_PASSWORD) is None
    assert not sign_in(client, "alice", ALICE_PASSWORD)

    alice.is_active = True
    alice.save(update_fields=["is_active"])
    assert authenticate(None, username="alice", password=ALICE_PASSWORD) == alice


@pytest.mark.usefixtures("finance_mappings")
def test_local_accounts_keep_working_and_are_never_taken_over_by_the_directory(
    directory_sign_in: LdapDirectory, client: Client
) -> None:
    User.objects.create_user("breakglass", password="breakglass-password-1")
    assert sign_in(client, "breakglass", "breakglass-password-1")
    client.logout()

    # The directory also has an "alice"; a local "alice" with her own password stays local.
    local_alice = User.objects.create_user(
        "alice", password="local-alice-password-1", first_name="Local"
    )
    assert not sign_in(client, "alice", ALICE_PASSWORD)
    local_alice.refresh_from_db()
    assert local_alice.first_name == "Local"
    assert directory_memberships("alice") == {}
    assert sign_in(client, "alice", "local-alice-password-1")
    client.logout()

    # Made passwordless by an admin, the account is the directory's from its next sign-in.
    local_alice.set_unusable_password()
    local_alice.save()
    assert sign_in(client, "ALICE", ALICE_PASSWORD)
    local_alice.refresh_from_db()
    assert local_alice.first_name == "Alice"
    assert set(directory_memberships("alice")) == {"finance"}


def test_a_sign_in_whose_groups_cannot_be_read_is_refused(
    directory_sign_in: LdapDirectory,
    finance_mappings: None,
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
    client: Client,
) -> None:
    # A group search base that does not exist (say, a renamed OU): the directory still
    # accepts the password, but without the groups the memberships cannot be brought up to
    # date, and letting alice in would keep access the directory may have taken away.
    configure_sign_in(
        monkeypatch,
        settings,
        {
            **directory_environment(directory_sign_in),
            "LDAP_GROUP_SEARCH_BASE": "ou=renamed,dc=corp,dc=example",
        },
    )
    assert not sign_in(client, "alice", ALICE_PASSWORD)
    assert directory_memberships("alice") == {}


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"LDAP_USER_SEARCH_BASE": PEOPLE_DN}, "LDAP_USER_SEARCH_BASE set but LDAP_SERVER_URI"),
        (
            {"LDAP_SERVER_URI": "ldap://127.0.0.1:389"},
            "LDAP_USER_SEARCH_BASE, LDAP_GROUP_SEARCH_BASE must be set",
        ),
        (
            {
                "LDAP_SERVER_URI": "ldap://dc1.corp.example",
                "LDAP_USER_SEARCH_BASE": PEOPLE_DN,
                "LDAP_GROUP_SEARCH_BASE": GROUPS_DN,
            },
            "would send passwords unencrypted",
        ),
        (
            {
                "LDAP_SERVER_URI": "ldaps://dc1.corp.example",
                "LDAP_USER_SEARCH_BASE": PEOPLE_DN,
                "LDAP_GROUP_SEARCH_BASE": GROUPS_DN,
                "LDAP_USER_FILTER": "(sAMAccountName=alice)",
            },
            "must contain %\\(user\\)s",
        ),
        (
            {
                "LDAP_SERVER_URI": "ldaps://dc1.corp.example",
                "LDAP_USER_SEARCH_BASE": PEOPLE_DN,
                "LDAP_GROUP_SEARCH_BASE": GROUPS_DN,
                "LDAP_BIND_DN": SERVICE_DN,
            },
            "LDAP_BIND_DN and LDAP_BIND_PASSWORD go together",
        ),
        (
            {
                "LDAP_SERVER_URI": "ldaps://dc1.corp.example",
                "LDAP_USER_SEARCH_BASE": PEOPLE_DN,
                "LDAP_GROUP_SEARCH_BASE": GROUPS_DN,
                "LDAP_GROUP_TYPE": "openldap",
            },
            "LDAP_GROUP_TYPE='openldap' must be one of",
        ),
    ],
)
def test_half_configured_directory_sign_in_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], message: str
) -> None:
    set_sign_in_environment(monkeypatch, environment)
    with pytest.raises(ConfigError, match=message):
        sign_in_settings()


def test_active_directory_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    from django_auth_ldap.config import ActiveDirectoryGroupType

    set_sign_in_environment(
        monkeypatch,
        {
            "LDAP_SERVER_URI": "ldap://dc1.corp.example",
            "LDAP_START_TLS": "true",
            "LDAP_USER_SEARCH_BASE": "ou=Staff,dc=corp,dc=example",
            "LDAP_USER_FILTER": "(sAMAccountName=%(user)s)",
            "LDAP_GROUP_SEARCH_BASE": "ou=Groups,dc=corp,dc=example",
            "LDAP_GROUP_TYPE": "activeDirectory",
        },
    )
    configured = sign_in_settings()
    assert configured["AUTHENTICATION_BACKENDS"][0] == LDAP_BACKEND
    assert configured["AUTH_LDAP_START_TLS"] is True
    assert configured["AUTH_LDAP_USER_SEARCH"].filterstr == "(sAMAccountName=%(user)s)"
    assert configured["AUTH_LDAP_GROUP_SEARCH"].filterstr == "(objectClass=group)"
    assert isinstance(configured["AUTH_LDAP_GROUP_TYPE"], ActiveDirectoryGroupType)
