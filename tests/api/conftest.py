"""API fixtures: service accounts with tokens, and a client that sends them."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from kb.accounts.models import Department, Membership
from kb.api.models import ApiToken, ServiceAccount


def service_account(
    name: str, department: Department | None, role: str = "member"
) -> ServiceAccount:
    user = User.objects.create_user(name)
    user.set_unusable_password()
    user.save()
    if department is not None:
        Membership.objects.create(user=user, department=department, role=role)
    return ServiceAccount.objects.create(user=user)


def token_for(account: ServiceAccount, actions: list[str], **fields: Any) -> str:
    return ApiToken.issue(account=account, name="test", actions=actions, **fields)[1]


def api(token: str, on_behalf: str = "") -> APIClient:
    client = APIClient()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    if on_behalf:
        headers["HTTP_X_ON_BEHALF_OF"] = on_behalf
    client.credentials(**headers)
    return client


@pytest.fixture
def finance_erp(departments: dict[str, Department]) -> str:
    """A Finance integration that may search, ask and ingest (a curator)."""
    account = service_account("finance-erp", departments["finance"], Membership.Role.CURATOR)
    return token_for(account, ["search", "ask", "ingest"])


@pytest.fixture
def engineering_crm(departments: dict[str, Department]) -> str:
    account = service_account("eng-crm", departments["engineering"], Membership.Role.CURATOR)
    return token_for(account, ["search", "ask", "ingest", "on_behalf"])
