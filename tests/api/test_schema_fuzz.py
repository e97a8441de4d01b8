"""Schemathesis against the live server's own OpenAPI schema: generated requests, valid and
invalid, for every operation; no response may be a server error or contradict the schema
(undocumented status code, wrong content type, body not matching its declared shape).

A failure prints the case as a curl command. KB_FUZZ_EXAMPLES=200 makes a longer hunt.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import schemathesis
from django.contrib.auth.models import Group
from django.test import Client
from hypothesis import HealthCheck, settings
from pytest_django.live_server_helper import LiveServer
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
)

from kb.accounts.models import AUDITORS_GROUP, Department, Membership
from kb.api.models import ApiToken
from kb.library.models import Collection
from tests.api.conftest import service_account
from tests.ingesting import ingest_text

# Sequences restart for each test, so the fixture's rows have the small ids (1, 2) that
# generated path parameters and bodies often contain: the fuzzer reaches real collections,
# documents, departments and conversations, not only 404s.
pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)

# Generated cases per operation in the fuzzing phase; the examples and coverage phases (the
# schema's boundaries, wrong types, missing fields, unexpected methods) add their own.
MAX_EXAMPLES = int(os.environ.get("KB_FUZZ_EXAMPLES", "10"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    ignored_auth,  # a successful request, sent again without and with a wrong token: 401
]


@dataclass(frozen=True)
class FuzzToken:
    pk: int
    secret: str

    def keep_usable(self) -> None:
        """The fuzzer may revoke or rotate its own token (both are API operations): undo that
        before each case, so every operation keeps being tested authenticated."""
        ApiToken.objects.filter(pk=self.pk).update(
            revoked_at=None, expires_at=None, replaced_by=None
        )


@pytest.fixture
def fuzz_token(
    fresh_index: None, departments: dict[str, Department], finance_collection: Collection
) -> FuzzToken:
    """Every action, for a Finance curator who is also an auditor, over a collection with an
    indexed document; a rate limit the fuzzer cannot reach."""
    ingest_text(
        finance_collection,
        "invoices.txt",
        "Invoices above 50,000 EUR are approved by the CFO, Dana Whitfield.",
    )
    account = service_account("fuzzer", departments["finance"], Membership.Role.CURATOR)
    account.user.groups.add(Group.objects.get_or_create(name=AUDITORS_GROUP)[0])
    token, secret = ApiToken.issue(
        account=account,
        name="fuzz",
        actions=list(ApiToken.Action.values),
        rate_limit_per_minute=1_000_000,
    )
    return FuzzToken(pk=token.pk, secret=secret)


SCHEMA_PATH = "/api/schema/?format=json"


def served_schema() -> dict[str, Any]:
    response = Client().get(SCHEMA_PATH)
    assert response.status_code == 200
    return json.loads(response.content)  # type: ignore[no-any-return]


# The schema is loaded when pytest collects this module (one test per operation), from the
# same view the live server serves it with; test_the_live_server_serves_this_schema checks
# that they are the same. The cases are then sent to the live server.
schema = schemathesis.openapi.from_dict(
    served_schema(),
    config=schemathesis.Config.from_dict(
        {
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "database": "none",  # no .hypothesis/ folder in the checkout
                "with-security-parameters": False,  # the fixture's token, always
            },
            "request-timeout": 60,
        }
    ),
)


def test_the_live_server_serves_this_schema(live_server: LiveServer) -> None:
    response = requests.get(live_server.url + SCHEMA_PATH, timeout=30)
    assert response.status_code == 200
    assert response.json() == schema.raw_schema


@schema.parametrize()
# The fixture's data is set up once per operation and shared by its generated cases, on
# purpose; responses wait for the embedding model, so no per-case deadline.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
def test_api_conforms_to_its_schema(
    case: schemathesis.Case[Any],
    live_server: LiveServer,
    fuzz_token: FuzzToken,
) -> None:
    fuzz_token.keep_usable()
    case.call_and_validate(
        base_url=live_server.url,
        headers={"Authorization": f"Bearer {fuzz_token.secret}"},
        checks=CHECKS,
    )


def test_inputs_the_generated_cases_rarely_reach(
    live_server: LiveServer, fuzz_token: FuzzToken
) -> None:
    """Each was a server error or a leak, found while fuzzing and probing by hand."""
    # No Authorization header at all.
    response = requests.get(f"{live_server.url}/api/v1/usage", timeout=30)
    assert response.status_code == 401 and response.headers["WWW-Authenticate"]
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {fuzz_token.secret}"
    base = f"{live_server.url}/api/v1"
    # NUL in an audit filter: PostgreSQL text cannot hold it.
    for name in ("action", "actor"):
        response = api.get(f"{base}/audit/records", params={name: "a\x00b"}, timeout=30)
        assert response.status_code == 400 and name in response.json()["errors"]
    # NUL in an Idempotency-Key.
    ask = {"question": "Who approves invoices?"}
    response = api.post(f"{base}/ask", json=ask, headers={"Idempotency-Key": "k\x00"}, timeout=60)
    assert response.status_code == 400
    # A refused request does not keep its key claimed: the retry is refused again, not
    # told "still running" (409) forever.
    for _ in range(2):
        response = api.post(
            f"{base}/ask", json={"question": ""}, headers={"Idempotency-Key": "k-1"}, timeout=60
        )
        assert response.status_code == 400, response.text
    # An unknown route: problem details, without the list of every route Django tried.
    response = api.get(f"{base}/nothing-here", timeout=30)
    assert response.status_code == 404
    assert response.json()["detail"] == "No such resource." and "tried" not in response.text
