"""Probes, Prometheus metrics and JSON log lines, against the real database, broker and index."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from kb.library.models import Collection
from kb.ops.logging import JsonFormatter
from kb.routing import clients
from tests.ingesting import ingest_text
from tests.llm_server import free_port

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "What is the hotel limit in Munich?"


@pytest.fixture
def no_llm(settings: Any) -> Iterator[Any]:
    """No language model configured: answers are extractive, readiness is not degraded."""
    settings.LLM_BASE_URL = None
    settings.LLM_GGUF_PATH = None
    clients.get_chat_model.cache_clear()
    clients.chat_model_version.cache_clear()
    yield settings
    clients.get_chat_model.cache_clear()
    clients.chat_model_version.cache_clear()


@pytest.fixture
def served_index(fresh_index: None, finance_collection: Collection) -> None:
    ingest_text(
        finance_collection,
        "travel.md",
        "# Travel policy\n\n## Hotels\n\nThe hotel limit is 180 EUR per night in Munich.\n",
    )


def readiness(client: Client) -> tuple[int, dict[str, Any]]:
    response = client.get("/readyz")
    assert response["Content-Type"] == "application/json"
    return response.status_code, response.json()


def test_healthz_answers_without_touching_anything(settings: Any) -> None:
    # Even with the broker gone (and the index never opened) the process is alive.
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readiness_is_green_against_the_real_services(served_index: None, no_llm: Any) -> None:
    status, body = readiness(Client())
    assert status == 200, body
    assert body["status"] == "ok"
    checks = body["checks"]
    assert set(checks) == {"database", "broker", "vector_index", "embedding_model", "llm"}
    for name, check in checks.items():
        assert check["status"] == "up", (name, check)
        assert isinstance(check["latency_ms"], float) and check["latency_ms"] >= 0
        assert check["detail"]
    assert "points" in checks["vector_index"]["detail"]
    # The ingestion embedded with the model in this process: it is loaded.
    assert checks["embedding_model"]["detail"].endswith("loaded")
    assert "extractive" in checks["llm"]["detail"] and not checks["llm"]["required"]


def test_readiness_fails_when_the_broker_is_unreachable(
    served_index: None, no_llm: Any, settings: Any
) -> None:
    settings.CELERY_BROKER_URL = f"redis://:s3cret-broker-pw@127.0.0.1:{free_port()}/0"
    status, body = readiness(Client())
    assert status == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["broker"]["status"] == "down"
    assert body["checks"]["database"]["status"] == "up"
    assert "s3cret-broker-pw" not in json.dumps(body)


def test_readiness_fails_without_a_served_index(fresh_index: None, no_llm: Any) -> None:
    status, body = readiness(Client())
    assert status == 503
    assert body["checks"]["vector_index"]["status"] == "down"
    assert "no index generation" in body["checks"]["vector_index"]["detail"]


def test_an_unreachable_llm_degrades_readiness_but_keeps_it(
    served_index: None, no_llm: Any
) -> None:
    no_llm.LLM_BASE_URL = f"http://127.0.0.1:{free_port()}/v1"
    no_llm.LLM_API_KEY = "sk-very-secret-key"
    status, body = readiness(Client())
    assert status == 200, body
    assert body["status"] == "degraded"
    llm = body["checks"]["llm"]
    assert llm["status"] == "down" and llm["required"] is False
    assert "passages" in llm["detail"] and "passages" in body["note"]
    assert "sk-very-secret-key" not in json.dumps(body)


def test_a_missing_gguf_file_degrades_readiness(served_index: None, no_llm: Any) -> None:
    no_llm.LLM_GGUF_PATH = "/nonexistent/model.gguf"
    status, body = readiness(Client())
    assert status == 200 and body["status"] == "degraded"
    assert "not found" in body["checks"]["llm"]["detail"]


def metric_samples(client: Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_count_a_question_and_requests_by_route(
    served_index: None, no_llm: Any, alice: User
) -> None:
    client = Client()
    client.force_login(alice)
    asked = ("kb_questions_answered_total", (("channel", "portal"), ("mode", "extractive")))
    posted = (
        "kb_http_request_duration_seconds_count",
        (("method", "POST"), ("route", "portal:ask"), ("status", "2xx")),
    )
    before = metric_samples(client)

    response = client.post(reverse("portal:ask"), {"question": QUESTION})
    assert response.status_code == 200
    assert "180 EUR" in response.content.decode()

    after = metric_samples(client)
    assert after[asked] == before.get(asked, 0) + 1
    assert after[posted] == before.get(posted, 0) + 1
    # Routes are names, never raw paths.
    assert not any(("route", "/") in labels for _, labels in after)
    assert after[("kb_answer_duration_seconds_count", (("mode", "extractive"),))] >= 1
    # Gauges from the database: the one version ingested, none waiting, none failed.
    assert after[("kb_document_versions", (("status", "indexed"),))] == 1
    assert after[("kb_ingestion_queue_depth", ())] == 0


def test_metrics_are_hidden_from_other_addresses(settings: Any) -> None:
    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 404
    settings.KB_METRICS_TOKEN = "scrape-token-0123456789"
    remote = Client(REMOTE_ADDR="10.1.2.3")
    assert remote.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 404
    response = remote.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-0123456789")
    assert response.status_code == 200
    settings.KB_METRICS_ALLOWED_IPS = ["10.0.0.0/8"]
    settings.KB_METRICS_TOKEN = ""
    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 200


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


def test_json_log_lines_carry_the_request_id(
    served_index: None, no_llm: Any, alice: User, json_log: io.StringIO
) -> None:
    # A model that is down: the view logs a warning while it answers from the passages.
    no_llm.LLM_BASE_URL = f"http://127.0.0.1:{free_port()}/v1"
    no_llm.LLM_TIMEOUT_SECONDS = 2
    client = Client()
    client.force_login(alice)
    response = client.post(reverse("portal:ask"), {"question": QUESTION})
    assert response.status_code == 200
    request_id = response["X-Request-ID"]

    lines = [json.loads(line) for line in json_log.getvalue().splitlines() if line.strip()]
    warning = next(e for e in lines if e["message"].startswith("LLM unavailable"))
    assert warning["request_id"] == request_id
    assert warning["user"] == "alice" and warning["via"] == "web"
    assert warning["level"] == "WARNING" and warning["logger"] == "kb.answering.answers"
    assert warning["time"].endswith("+00:00")


def test_json_lines_include_the_exception() -> None:
    formatter = JsonFormatter()
    try:
        raise ValueError("broken\nacross lines")
    except ValueError:
        record = logging.LogRecord("kb.x", logging.ERROR, __file__, 1, "failed %s", ("x",), None)
        record.exc_info = sys.exc_info()
    line = formatter.format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "failed x" and entry["request_id"] == ""
    assert "ValueError: broken" in entry["exception"]
