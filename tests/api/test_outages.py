"""What the API does while a dependency is down (docs/security.md case 12), with real parts: a
Redis cache and a Qdrant server that nothing answers for (a free port), the real embedder and
PostgreSQL. bench/drills.py drills the same under load with the whole stack."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from kb.accounts.models import Department
from kb.library import components
from kb.library.indexing import active_generation
from kb.library.models import Collection
from tests.api.conftest import api, service_account, token_for
from tests.api.test_api import problem
from tests.ingesting import ingest_text


def dead_port() -> int:
    """A port where nothing listens: a server that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_rate_limit_fails_open_while_its_cache_is_down(
    departments: dict[str, Department], settings: Any
) -> None:
    account = service_account("chatty", departments["finance"])
    client = api(token_for(account, ["search"], rate_limit_per_minute=2))
    assert [client.get("/api/v1/usage").status_code for _ in range(3)] == [200, 200, 429]

    # The shared Redis cache goes away: requests are let through rather than refused or held.
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{dead_port()}/0",
            "OPTIONS": {"socket_connect_timeout": 1.0, "socket_timeout": 1.0},
        }
    }
    assert [client.get("/api/v1/usage").status_code for _ in range(4)] == [200] * 4


@pytest.fixture
def index_down(fresh_index: None, finance_collection: Collection, settings: Any) -> Iterator[None]:
    """Documents indexed in the embedded index, then the installation's index is a Qdrant
    server that does not answer."""
    ingest_text(
        finance_collection,
        "invoices.txt",
        "Invoices above 50,000 EUR are approved by the CFO, Dana Whitfield.",
    )
    active_generation()
    components.close_index()
    settings.QDRANT_URL = f"http://127.0.0.1:{dead_port()}"
    yield
    components.close_index()


@pytest.fixture
def finance_token(departments: dict[str, Department]) -> str:
    return token_for(service_account("finance-erp", departments["finance"]), ["search", "ask"])


def test_an_unreachable_index_is_a_503_problem_with_retry_after(
    index_down: None, finance_token: str
) -> None:
    for path, body in [
        ("/api/v1/search", {"query": "Who approves invoices?"}),
        ("/api/v1/ask", {"question": "Who approves invoices?", "stream": False}),
    ]:
        response = api(finance_token).post(path, body, format="json")
        assert response.status_code == 503, response.content
        details = problem(response)
        assert details["type"] == "https://kb.invalid/problems/index-unavailable"
        assert "index is unavailable" in str(details["detail"])
        assert details["retry_after"] == 30 and response["Retry-After"] == "30"
        assert details["instance"] == path
        assert "Traceback" not in response.content.decode()


def test_a_streamed_ask_ends_with_an_error_event_when_the_index_is_down(
    index_down: None, finance_token: str
) -> None:
    response = api(finance_token).post(
        "/api/v1/ask", {"question": "Who approves invoices?", "stream": True}, format="json"
    )
    assert response["Content-Type"].startswith("text/event-stream")
    body = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    events = [line[len("event: ") :] for line in body.splitlines() if line.startswith("event")]
    assert events == ["error"], body
    error = json.loads(body.split("data: ", 1)[1])
    assert error["status"] == 503 and error["retry_after"] == 30
    assert error["type"].endswith("/index-unavailable")
    assert "index is unavailable" in error["detail"]
