"""Configure the portal's sign-in for one test the way an operator does: environment only."""

from __future__ import annotations

import pytest
from pytest_django.fixtures import Settings

from kb.settings_sso import LDAP_VARIABLES, OIDC_VARIABLES, sign_in_settings


def configure_sign_in(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, environment: dict[str, str]
) -> None:
    """Replaces every sign-in variable with `environment` and applies the resulting settings
    (the backends read them when they are instantiated, i.e. per request)."""
    set_sign_in_environment(monkeypatch, environment)
    for name, value in sign_in_settings().items():
        setattr(settings, name, value)


def set_sign_in_environment(monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]) -> None:
    for name in ("LDAP_SERVER_URI", "OIDC_RP_CLIENT_ID", *LDAP_VARIABLES, *OIDC_VARIABLES):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"{name}_FILE", raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
