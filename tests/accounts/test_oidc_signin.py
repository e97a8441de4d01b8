"""Signing in with a company account through a real OpenID Connect provider.

The provider is django-oauth-toolkit in its own process (tests/oidc_provider); the portal
runs in pytest-django's live server; a `requests` session plays the browser through the
whole authorization-code flow: the portal's sign-in page, the provider's login form, the
callback, and back into the portal.
"""

from __future__ import annotations

import html
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit, urlunsplit

import pytest
import requests
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client
from pytest_django.fixtures import Settings
from pytest_django.live_server_helper import LiveServer

from kb.accounts.access import is_auditor
from kb.accounts.backends import CompanyOIDCBackend, groups_from_claims, oidc_username
from kb.accounts.models import Clearance, Department, DirectoryGroupMapping, Membership
from kb.env import ConfigError
from kb.settings_sso import OIDC_BACKEND, sign_in_settings
from tests.llm_server import free_port
from tests.oidc_provider.server import OidcProvider, running_oidc_provider
from tests.sign_in import configure_sign_in, set_sign_in_environment

CLIENT_ID = "private-kb"
CLIENT_SECRET = "private-kb-client-secret-for-tests-only"
COMPANY_BUTTON = "Sign in with your company account"
FAILURE_MESSAGE = "Signing in with your company account did not succeed"


@pytest.fixture(scope="session")
def provider(
    tmp_path_factory: pytest.TempPathFactory, live_server: LiveServer
) -> Iterator[OidcProvider]:
    with running_oidc_provider(tmp_path_factory.mktemp("oidc") / "provider") as started:
        started.register_client(CLIENT_ID, CLIENT_SECRET, f"{live_server.url}/oidc/callback/")
        yield started


def provider_environment(provider: OidcProvider) -> dict[str, str]:
    """What an operator copies from the provider's discovery document and client page."""
    discovery = provider.discovery
    return {
        "OIDC_RP_CLIENT_ID": CLIENT_ID,
        "OIDC_RP_CLIENT_SECRET": CLIENT_SECRET,
        "OIDC_OP_AUTHORIZATION_ENDPOINT": discovery["authorization_endpoint"],
        "OIDC_OP_TOKEN_ENDPOINT": discovery["token_endpoint"],
        "OIDC_OP_USER_ENDPOINT": discovery["userinfo_endpoint"],
        "OIDC_OP_JWKS_ENDPOINT": discovery["jwks_uri"],
        "OIDC_RP_SCOPES": "openid email profile groups",
    }


@pytest.fixture
def portal(
    provider: OidcProvider,
    live_server: LiveServer,
    transactional_db: None,
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
) -> str:
    """The live portal's URL, with company sign-in configured for the test provider."""
    configure_sign_in(monkeypatch, settings, provider_environment(provider))
    assert settings.AUTHENTICATION_BACKENDS[-1] == OIDC_BACKEND
    return str(live_server.url)


@pytest.fixture
def mapped_departments(transactional_db: None) -> dict[str, Department]:
    finance = Department.objects.create(name="Finance", slug="finance")
    engineering = Department.objects.create(name="Engineering", slug="engineering")
    legal = Department.objects.create(name="Legal", slug="legal")
    DirectoryGroupMapping.objects.create(
        group="Finance",
        department=finance,
        grant=DirectoryGroupMapping.Grant.CURATOR,
        clearance=Clearance.CONFIDENTIAL,
    )
    DirectoryGroupMapping.objects.create(
        group="legal", department=legal, clearance=Clearance.SECRET
    )
    DirectoryGroupMapping.objects.create(
        group="Internal Audit", grant=DirectoryGroupMapping.Grant.AUDITOR, department=None
    )
    return {"finance": finance, "engineering": engineering, "legal": legal}


def form_field(page: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match, f"no {name} field in: {page[:2000]}"
    return html.unescape(match.group(1))


def press_company_sign_in(browser: requests.Session, portal: str, path: str) -> requests.Response:
    """Opens `path` signed out (landing on the sign-in page) and presses the company button;
    returns the provider's login page it leads to."""
    sign_in_page = browser.get(f"{portal}{path}", timeout=30)
    assert urlsplit(sign_in_page.url).path == "/login/"
    match = re.search(
        rf'<form method="get" action="([^"]+)">(.*?)<button type="submit">{COMPANY_BUTTON}',
        sign_in_page.text,
        re.DOTALL,
    )
    assert match, "the sign-in page offers no company sign-in"
    action, fields = match.groups()
    query = {"next": form_field(fields, "next")} if 'name="next"' in fields else {}
    login_page = browser.get(urljoin(sign_in_page.url, action), params=query, timeout=30)
    assert "Corp sign-in" in login_page.text, login_page.text[:2000]
    return login_page


def log_in_at_provider(
    browser: requests.Session, login_page: requests.Response, username: str, password: str
) -> str:
    """Submits the provider's login form and follows the provider's redirects; returns the
    URL it sends the browser back to (the portal's callback, with code and state)."""
    response = browser.post(
        login_page.url,
        data={
            "csrfmiddlewaretoken": form_field(login_page.text, "csrfmiddlewaretoken"),
            "username": username,
            "password": password,
            "next": form_field(login_page.text, "next"),
        },
        allow_redirects=False,
        timeout=30,
    )
    provider_origin = urlsplit(login_page.url).netloc
    while response.is_redirect:
        target = urljoin(response.url, response.headers["Location"])
        if urlsplit(target).netloc != provider_origin:
            return target
        response = browser.get(target, allow_redirects=False, timeout=30)
    raise AssertionError(f"the provider did not send the browser back: {response.text[:2000]}")


def sign_in_with_company_account(
    browser: requests.Session, portal: str, username: str, password: str, path: str = "/"
) -> requests.Response:
    login_page = press_company_sign_in(browser, portal, path)
    callback = log_in_at_provider(browser, login_page, username, password)
    return browser.get(callback, timeout=30)


def signed_in_user(browser: requests.Session) -> User | None:
    """Who the portal's session cookie in this browser belongs to (None: nobody)."""
    session_key = browser.cookies.get("sessionid")
    if session_key is None:
        return None
    user_id = SessionStore(session_key=session_key).get("_auth_user_id")
    return None if user_id is None else User.objects.get(pk=user_id)


def memberships(user: User) -> dict[str, tuple[str, int, str]]:
    return {
        m.department.slug: (m.role, m.clearance, m.source)
        for m in Membership.objects.filter(user=user).select_related("department")
    }


def test_company_sign_in_end_to_end(
    portal: str, provider: OidcProvider, mapped_departments: dict[str, Department]
) -> None:
    subject = provider.set_person(
        "olivia",
        "olivia-provider-password",
        groups=["Finance", "Internal Audit", "Unmapped"],
        email="olivia@corp.example",
        given_name="Olivia",
        family_name="Ortiz",
    )
    # A local account with the same name and e-mail address: a sign-in matched on either
    # would take it over.
    local_olivia = User.objects.create_user(
        "olivia", email="olivia@corp.example", password="local-olivia-password-1"
    )
    Membership.objects.create(user=local_olivia, department=mapped_departments["engineering"])

    browser = requests.Session()
    final = sign_in_with_company_account(
        browser, portal, "olivia", "olivia-provider-password", path="/collections/"
    )

    assert final.status_code == 200
    assert final.url == f"{portal}/collections/"  # back where the person was going
    olivia = signed_in_user(browser)
    assert olivia is not None
    assert olivia.username == oidc_username(subject) != local_olivia.username
    assert (olivia.first_name, olivia.last_name, olivia.email) == (
        "Olivia",
        "Ortiz",
        "olivia@corp.example",
    )
    assert not olivia.has_usable_password()
    assert memberships(olivia) == {
        "finance": (Membership.Role.CURATOR, Clearance.CONFIDENTIAL, Membership.Source.DIRECTORY)
    }
    assert is_auditor(olivia)
    assert memberships(local_olivia) == {
        "engineering": (Membership.Role.MEMBER, Clearance.INTERNAL, Membership.Source.LOCAL)
    }
    assert not is_auditor(local_olivia)
    assert browser.get(f"{portal}/", timeout=30).url == f"{portal}/"


def test_each_sign_in_resyncs_groups_for_the_same_subject(
    portal: str, provider: OidcProvider, mapped_departments: dict[str, Department]
) -> None:
    provider.set_person("pat", "pat-password", groups=["Finance"], given_name="Pat")
    first = requests.Session()
    sign_in_with_company_account(first, portal, "pat", "pat-password")
    pat = signed_in_user(first)
    assert pat is not None
    assert set(memberships(pat)) == {"finance"}
    Membership.objects.create(user=pat, department=mapped_departments["engineering"])

    # Renamed at the provider, new e-mail address, moved from Finance to Legal: the same
    # person (same subject) to the portal, with memberships from the new groups.
    provider.set_person(
        "pat",
        "pat-password",
        groups=["LEGAL"],
        given_name="Patricia",
        email="patricia@corp.example",
        rename_to="patricia",
    )
    second = requests.Session()
    sign_in_with_company_account(second, portal, "patricia", "pat-password")

    assert signed_in_user(second) == pat
    pat.refresh_from_db()
    assert (pat.first_name, pat.email) == ("Patricia", "patricia@corp.example")
    assert memberships(pat) == {
        "legal": (Membership.Role.MEMBER, Clearance.SECRET, Membership.Source.DIRECTORY),
        "engineering": (Membership.Role.MEMBER, Clearance.INTERNAL, Membership.Source.LOCAL),
    }
    assert User.objects.filter(username__startswith="oidc:").count() == 1


def with_state(url: str, state: str) -> str:
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    return urlunsplit(parts._replace(query=urlencode({**query, "state": state})))


def test_a_tampered_or_foreign_callback_is_refused(
    portal: str, provider: OidcProvider, mapped_departments: dict[str, Department]
) -> None:
    provider.set_person("quinn", "quinn-password", groups=["Finance"])
    browser = requests.Session()
    callback = log_in_at_provider(
        browser, press_company_sign_in(browser, portal, "/"), "quinn", "quinn-password"
    )
    assert urlsplit(callback).path == "/oidc/callback/"
    assert set(parse_qs(urlsplit(callback).query)) == {"code", "state"}

    tampered = browser.get(with_state(callback, secrets.token_urlsafe(24)), timeout=30)
    assert urlsplit(tampered.url).path == "/login/"
    assert FAILURE_MESSAGE in tampered.text
    assert signed_in_user(browser) is None

    # The genuine callback opened in someone else's browser (login CSRF) signs nobody in.
    other_browser = requests.Session()
    foreign = other_browser.get(callback, timeout=30)
    assert urlsplit(foreign.url).path == "/login/"
    assert signed_in_user(other_browser) is None

    # Neither attempt used up the code: the browser that started the sign-in completes it.
    genuine = browser.get(callback, timeout=30)
    assert genuine.url == f"{portal}/"
    quinn = signed_in_user(browser)
    assert quinn is not None
    assert set(memberships(quinn)) == {"finance"}


def test_a_deactivated_person_cannot_sign_in_and_their_session_ends(
    portal: str, provider: OidcProvider, mapped_departments: dict[str, Department]
) -> None:
    provider.set_person("rory", "rory-password", groups=["Finance"])
    browser = requests.Session()
    sign_in_with_company_account(browser, portal, "rory", "rory-password")
    rory = signed_in_user(browser)
    assert rory is not None

    rory.is_active = False
    rory.save(update_fields=["is_active"])

    assert urlsplit(browser.get(f"{portal}/", timeout=30).url).path == "/login/"
    assert CompanyOIDCBackend().get_user(rory.pk) is None

    provider.set_person("rory", "rory-password", groups=["legal"])
    refused = sign_in_with_company_account(requests.Session(), portal, "rory", "rory-password")
    assert urlsplit(refused.url).path == "/login/"
    assert FAILURE_MESSAGE in refused.text
    # Refused before anything was synced from the new groups.
    assert set(memberships(rory)) == {"finance"}


def test_a_provider_that_cannot_be_reached_ends_on_the_sign_in_page(
    portal: str,
    provider: OidcProvider,
    mapped_departments: dict[str, Department],
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
) -> None:
    provider.set_person("tess", "tess-password", groups=["Finance"])
    browser = requests.Session()
    callback = log_in_at_provider(
        browser, press_company_sign_in(browser, portal, "/"), "tess", "tess-password"
    )
    # The token endpoint goes away between the provider's login and the callback.
    configure_sign_in(
        monkeypatch,
        settings,
        {
            **provider_environment(provider),
            "OIDC_OP_TOKEN_ENDPOINT": f"http://127.0.0.1:{free_port()}/o/token/",
        },
    )
    refused = browser.get(callback, timeout=30)
    assert refused.status_code == 200
    assert urlsplit(refused.url).path == "/login/"
    assert FAILURE_MESSAGE in refused.text
    assert signed_in_user(browser) is None


def test_company_sign_in_is_offered_only_when_configured(
    client: Client, monkeypatch: pytest.MonkeyPatch, settings: Settings, db: None
) -> None:
    configure_sign_in(monkeypatch, settings, {})
    assert COMPANY_BUTTON not in client.get("/login/").content.decode()
    assert client.get("/oidc/authenticate/").status_code == 404
    assert client.get("/oidc/callback/?code=x&state=y").status_code == 404

    configure_sign_in(
        monkeypatch,
        settings,
        {
            "OIDC_RP_CLIENT_ID": CLIENT_ID,
            "OIDC_RP_CLIENT_SECRET": CLIENT_SECRET,
            "OIDC_OP_AUTHORIZATION_ENDPOINT": "https://login.corp.example/authorize",
            "OIDC_OP_TOKEN_ENDPOINT": "https://login.corp.example/token",
            "OIDC_OP_USER_ENDPOINT": "https://login.corp.example/userinfo",
            "OIDC_OP_JWKS_ENDPOINT": "https://login.corp.example/jwks",
        },
    )
    page = client.get("/login/?next=/collections/").content.decode()
    assert COMPANY_BUTTON in page
    assert 'action="/oidc/authenticate/"' in page
    start = client.get("/oidc/authenticate/", {"next": "/collections/"})
    assert start.status_code == 302
    authorize = urlsplit(start["Location"])
    assert (authorize.netloc, authorize.path) == ("login.corp.example", "/authorize")
    request = parse_qs(authorize.query)
    assert request["client_id"] == [CLIENT_ID]
    assert request["scope"] == ["openid email profile"]
    assert request["code_challenge_method"] == ["S256"]
    assert request["redirect_uri"] == ["http://testserver/oidc/callback/"]
    assert request["nonce"] and request["state"]


def test_the_password_form_never_redeems_a_code(
    portal: str, provider: OidcProvider, mapped_departments: dict[str, Department]
) -> None:
    # A code in the sign-in form's query string must not reach the provider: only the
    # callback, with the nonce and PKCE verifier from the session, may redeem one.
    provider.set_person("sam", "sam-password", groups=["Finance"])
    browser = requests.Session()
    callback = log_in_at_provider(
        browser, press_company_sign_in(browser, portal, "/"), "sam", "sam-password"
    )
    query = urlsplit(callback).query
    sign_in_page = browser.get(f"{portal}/login/?{query}", timeout=30)
    posted = browser.post(
        f"{portal}/login/?{query}",
        data={
            "csrfmiddlewaretoken": form_field(sign_in_page.text, "csrfmiddlewaretoken"),
            "username": "sam",
            "password": "sam-password",
        },
        timeout=30,
    )
    assert "did not match" in posted.text
    assert signed_in_user(browser) is None
    assert browser.get(callback, timeout=30).url == f"{portal}/"  # the code was not used up


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"OIDC_OP_TOKEN_ENDPOINT": "https://x/token"}, "set but OIDC_RP_CLIENT_ID is not"),
        (
            {"OIDC_RP_CLIENT_ID": CLIENT_ID},
            "OIDC_RP_CLIENT_SECRET, OIDC_OP_AUTHORIZATION_ENDPOINT, OIDC_OP_TOKEN_ENDPOINT, "
            "OIDC_OP_USER_ENDPOINT, OIDC_OP_JWKS_ENDPOINT must be set",
        ),
        (
            {
                "OIDC_RP_CLIENT_ID": CLIENT_ID,
                "OIDC_RP_CLIENT_SECRET": CLIENT_SECRET,
                "OIDC_OP_AUTHORIZATION_ENDPOINT": "https://login.corp.example/authorize",
                "OIDC_OP_TOKEN_ENDPOINT": "http://login.corp.example/token",
                "OIDC_OP_USER_ENDPOINT": "https://login.corp.example/userinfo",
                "OIDC_OP_JWKS_ENDPOINT": "https://login.corp.example/jwks",
            },
            "OIDC_OP_TOKEN_ENDPOINT='http://login.corp.example/token' must use https",
        ),
        (
            {"OIDC_RP_CLIENT_ID": CLIENT_ID, "OIDC_RP_SIGN_ALGO": "none"},
            "OIDC_RP_SIGN_ALGO='none' must be one of",
        ),
    ],
)
def test_half_configured_company_sign_in_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], message: str
) -> None:
    set_sign_in_environment(monkeypatch, environment)
    with pytest.raises(ConfigError, match=re.escape(message)):
        sign_in_settings()


def test_the_client_secret_can_come_from_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret_file = tmp_path / "oidc_client_secret"
    secret_file.write_text(f"{CLIENT_SECRET}\n")
    set_sign_in_environment(
        monkeypatch,
        {
            "OIDC_RP_CLIENT_ID": CLIENT_ID,
            "OIDC_RP_CLIENT_SECRET_FILE": str(secret_file),
            "OIDC_OP_AUTHORIZATION_ENDPOINT": "https://login.corp.example/authorize",
            "OIDC_OP_TOKEN_ENDPOINT": "https://login.corp.example/token",
            "OIDC_OP_USER_ENDPOINT": "https://login.corp.example/userinfo",
            "OIDC_RP_SIGN_ALGO": "HS256",
        },
    )
    configured = sign_in_settings()
    assert configured["OIDC_RP_CLIENT_SECRET"] == CLIENT_SECRET
    assert configured["OIDC_OP_JWKS_ENDPOINT"] is None  # HS256 is checked with the secret


def test_groups_claim_shapes_providers_send() -> None:
    assert groups_from_claims({"groups": ["Finance", 7, "Legal"]}, "groups") == ["Finance", "Legal"]
    assert groups_from_claims({"groups": "Finance"}, "groups") == ["Finance"]
    assert groups_from_claims({}, "groups") == []
    # Keycloak's realm roles (nested) and Auth0's namespaced claims (dots in the name).
    keycloak = {"realm_access": {"roles": ["finance"]}}
    assert groups_from_claims(keycloak, "realm_access.roles") == ["finance"]
    auth0 = {"https://corp.example/groups": ["finance"]}
    assert groups_from_claims(auth0, "https://corp.example/groups") == ["finance"]


def test_every_subject_gets_a_username_of_its_own() -> None:
    assert oidc_username("248289761001") == "oidc:248289761001"
    long_subjects = ["x" * 200, "x" * 199 + "y"]
    usernames = {oidc_username(subject) for subject in long_subjects}
    assert len(usernames) == 2
    assert all(len(name) <= 150 and name.startswith("oidc:sha256:") for name in usernames)
