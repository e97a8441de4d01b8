"""Sensitivity routing: which model endpoint may see which classification levels.

The on-premises model and the "external" endpoint are both llama.cpp's real server, each
behind its own counting reverse proxy (a real HTTP server that forwards every request and
streams the reply back), so the tests see exactly which endpoint each request reached and
what it carried.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.test import Client

from inference.answering import REWRITE_PROMPT
from kb.accounts.models import Clearance, Department, Membership
from kb.answering import answers as services
from kb.audit.models import AuditRecord
from kb.audit.trail import record
from kb.library.models import Collection
from kb.routing import clients
from kb.routing.models import ModelEndpoint
from kb.routing.policy import NOTICE_NOT_ALLOWED, _api_key, _ceiling
from tests.asking import answer_question
from tests.ingesting import ingest_text
from tests.llm_server import free_port

pytestmark = pytest.mark.django_db(transaction=True)

PUBLIC_QUESTION = "When does the canteen open for breakfast?"
CONFIDENTIAL_QUESTION = "What price is planned for the Nordwind acquisition?"
MIXED_QUESTION = "When does the canteen open for breakfast, and what price is planned for Nordwind?"


class CountingProxy:
    """A reverse proxy in front of an OpenAI-compatible server that keeps every chat request
    it forwarded (the parsed JSON body)."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        self.chats: list[dict[str, Any]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._forward(b"")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.endswith("/chat/completions"):
                    proxy.chats.append(json.loads(body))
                self._forward(body)

            def _forward(self, body: bytes) -> None:
                upstream_connection = http.client.HTTPConnection(host, port, timeout=120)
                skip = {"host", "connection", "content-length", "accept-encoding"}
                headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                upstream_connection.request(self.command, self.path, body=body, headers=headers)
                reply = upstream_connection.getresponse()
                self.send_response(reply.status)
                for name, value in reply.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Connection", "close")
                self.end_headers()
                # Streamed through piece by piece; the end of the body is the connection's.
                while piece := reply.read1(65536):
                    self.wfile.write(piece)
                    self.wfile.flush()
                upstream_connection.close()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{parts.path}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def carried(self, text: str) -> bool:
        return any(text in json.dumps(chat) for chat in self.chats)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def on_premises(llm_server_url: str, settings: Any) -> Iterator[CountingProxy]:
    """The configured model (LLM_BASE_URL): on premises, cleared to secret."""
    proxy = CountingProxy(llm_server_url)
    clients.get_chat_model.cache_clear()
    settings.LLM_BASE_URL = proxy.url
    settings.LLM_MODEL = "gemma-3-270m"
    settings.LLM_MAX_TOKENS = 16
    settings.LLM_TIMEOUT_SECONDS = 60
    yield proxy
    clients.get_chat_model.cache_clear()
    proxy.close()


@pytest.fixture
def external(llm_server_url: str, settings: Any) -> Iterator[CountingProxy]:
    """The stand-in for an external OpenAI-compatible service, switched on by the operator."""
    proxy = CountingProxy(llm_server_url)
    settings.LLM_EXTERNAL_ALLOWED = True
    settings.LLM_MAX_TOKENS = 16
    yield proxy
    proxy.close()


def external_row(url: str, **fields: Any) -> ModelEndpoint:
    row = ModelEndpoint(
        name="hosted-public",
        base_url=url,
        model="gemma-3-270m",
        location=ModelEndpoint.Location.EXTERNAL,
        max_classification=Clearance.PUBLIC,
        preference=10,
        **fields,
    )
    row.full_clean()
    row.save()
    return row


@pytest.fixture
def reader(fresh_index: None, departments: dict[str, Department]) -> User:
    """A Finance member cleared to confidential, with a public and a confidential collection."""
    finance = departments["finance"]
    user = User.objects.create_user("carol", password="carol-password-1")
    Membership.objects.create(user=user, department=finance, clearance=Clearance.CONFIDENTIAL)
    canteen = Collection.objects.create(
        name="Canteen", department=finance, classification=Clearance.PUBLIC
    )
    deals = Collection.objects.create(
        name="Deals", department=finance, classification=Clearance.CONFIDENTIAL
    )
    ingest_text(
        canteen,
        "canteen.md",
        "# Canteen\n\nThe canteen opens for breakfast at 7:30 and serves it until 10:00.\n",
    )
    ingest_text(
        deals,
        "nordwind.md",
        "# Project Bluebird\n\nThe acquisition of Nordwind GmbH is planned at a price of "
        "40 million EUR.\n",
    )
    return user


def routed() -> list[AuditRecord]:
    return list(AuditRecord.objects.filter(action="llm.routed").order_by("seq"))


def levels(answer: services.Answer) -> set[int]:
    return {s.classification for s in answer.sources}


def test_public_sources_go_to_the_preferred_external_endpoint(
    reader: User, on_premises: CountingProxy, external: CountingProxy
) -> None:
    external_row(external.url, enabled=True)
    answer = answer_question(reader, PUBLIC_QUESTION)
    assert levels(answer) == {Clearance.PUBLIC}, "the question should only find the canteen"
    assert answer.mode == "generated", answer.notice
    assert answer.endpoint == "hosted-public"
    assert len(external.chats) == 1 and not on_premises.chats
    assert external.carried("7:30") and not external.carried("Nordwind")
    [decision] = routed()
    assert decision.outcome == "success"
    assert decision.details["classification"] == "public"
    assert decision.details["endpoint"] == "hosted-public"
    assert decision.details["location"] == "external"
    assert decision.actor == "carol"
    asked = AuditRecord.objects.get(action="question.asked")
    assert asked.details["endpoint"] == "hosted-public"


def test_a_confidential_source_never_reaches_the_external_endpoint(
    reader: User, on_premises: CountingProxy, external: CountingProxy
) -> None:
    external_row(external.url, enabled=True)
    confidential = answer_question(reader, CONFIDENTIAL_QUESTION)
    assert Clearance.CONFIDENTIAL in levels(confidential)
    mixed = answer_question(reader, MIXED_QUESTION)
    assert levels(mixed) == {Clearance.PUBLIC, Clearance.CONFIDENTIAL}
    assert external.chats == []
    assert len(on_premises.chats) == 2 and on_premises.carried("Nordwind")
    for answer in (confidential, mixed):
        assert answer.mode == "generated", answer.notice
        assert answer.endpoint == "configured"
    decisions = routed()
    assert [d.details["classification"] for d in decisions] == ["confidential"] * 2
    assert [d.details["location"] for d in decisions] == ["on_premises"] * 2
    for decision in decisions:
        assert {"endpoint": "hosted-public", "reason": "cleared to public only"} in (
            decision.details["skipped"]
        )


def test_no_endpoint_cleared_for_the_sources_answers_with_passages(
    reader: User, external: CountingProxy, settings: Any
) -> None:
    """Only the external endpoint and no on-premises model: a confidential question gets the
    passages and a notice, and the denial is audited."""
    clients.get_chat_model.cache_clear()
    settings.LLM_BASE_URL = None
    settings.LLM_GGUF_PATH = None
    external_row(external.url, enabled=True)
    answer = answer_question(reader, CONFIDENTIAL_QUESTION)
    clients.get_chat_model.cache_clear()
    assert answer.mode == "extractive"
    assert answer.notice == NOTICE_NOT_ALLOWED
    assert answer.endpoint == "" and answer.model == ""
    assert "40 million EUR" in answer.text
    assert external.chats == []
    [decision] = routed()
    assert decision.outcome == "denied"
    assert decision.details["endpoint"] == ""


def test_a_disabled_or_switched_off_external_endpoint_is_never_used(
    reader: User, on_premises: CountingProxy, external: CountingProxy, settings: Any
) -> None:
    row = external_row(external.url)  # enabled is off unless an admin switches it on
    assert row.enabled is False
    first = answer_question(reader, PUBLIC_QUESTION)
    assert levels(first) == {Clearance.PUBLIC}
    assert first.endpoint == "configured"
    # Enabled in the admin site, but the operator has not allowed external endpoints.
    row.enabled = True
    row.save()
    settings.LLM_EXTERNAL_ALLOWED = False
    second = answer_question(reader, PUBLIC_QUESTION)
    assert second.endpoint == "configured"
    assert external.chats == []
    assert len(on_premises.chats) == 2
    last = routed()[-1]
    assert {"endpoint": "hosted-public", "reason": "LLM_EXTERNAL_ALLOWED is off"} in (
        last.details["skipped"]
    )


def test_the_follow_up_rewrite_never_reaches_the_external_endpoint(
    reader: User, on_premises: CountingProxy, external: CountingProxy
) -> None:
    external_row(external.url, enabled=True)
    first = answer_question(reader, CONFIDENTIAL_QUESTION)
    follow_up = answer_question(reader, "and the canteen?", first.conversation_id)
    rewrites = [c for c in on_premises.chats if c["messages"][0]["content"] == REWRITE_PROMPT]
    # The earlier (confidential) question went to the on-premises model to be rewritten...
    assert len(rewrites) == 1 and "Nordwind" in json.dumps(rewrites[0])
    # ...and nothing about it went out, whatever the follow-up's sources were.
    assert not external.carried(REWRITE_PROMPT)
    assert not external.carried("Nordwind")
    assert follow_up.search_query


def test_a_failing_external_endpoint_falls_back_on_premises(
    reader: User, on_premises: CountingProxy, external: CountingProxy
) -> None:
    external_row(f"http://127.0.0.1:{free_port()}/v1", enabled=True)  # nothing listens there
    answer = answer_question(reader, PUBLIC_QUESTION)
    assert answer.mode == "generated", answer.notice
    assert answer.endpoint == "configured"
    assert len(on_premises.chats) == 1
    chosen, fallback = routed()
    assert chosen.details["endpoint"] == "hosted-public"
    assert fallback.details["endpoint"] == "configured"
    assert fallback.details["location"] == "on_premises"
    assert fallback.details["failed"] == "hosted-public"


def test_an_external_endpoint_is_refused_above_public(monkeypatch: pytest.MonkeyPatch) -> None:
    row = ModelEndpoint(
        name="hosted",
        base_url="https://llm.example.com/v1",
        model="m",
        location=ModelEndpoint.Location.EXTERNAL,
        max_classification=Clearance.CONFIDENTIAL,
    )
    with pytest.raises(ValidationError) as refused:
        row.full_clean()
    assert "max_classification" in refused.value.message_dict
    # Saved past the form, the database refuses it too.
    with pytest.raises(IntegrityError), transaction.atomic():
        row.save()
    # And were such a row ever read, the decision would still treat it as public only.
    assert _ceiling(row) == Clearance.PUBLIC
    assert _ceiling(ModelEndpoint(location="on_premises", max_classification=3)) == 3
    # Plain http is refused for an external endpoint off loopback; a key is named, not stored.
    bad = ModelEndpoint(
        name="plain",
        base_url="http://llm.example.com/v1",
        model="m",
        api_key_env="sk-abc123",
    )
    with pytest.raises(ValidationError) as refused:
        bad.full_clean()
    assert {"base_url", "api_key_env"} <= set(refused.value.message_dict)
    # Only KB_ENDPOINT_KEY_* variables: not the product's own secrets, and a row written past
    # the form still does not read one.
    bad.api_key_env = "SECRET_KEY"
    with pytest.raises(ValidationError) as refused:
        bad.full_clean()
    assert "api_key_env" in refused.value.message_dict
    assert _api_key(bad)[0] is None
    monkeypatch.setenv("KB_ENDPOINT_KEY_HOSTED", "sk-test")
    assert _api_key(ModelEndpoint(api_key_env="KB_ENDPOINT_KEY_HOSTED")) == ("sk-test", "")


def test_the_admin_site_refuses_and_audits() -> None:
    root = User.objects.create_superuser("root", password="root-password-1")
    client = Client()
    client.force_login(root)
    form = {
        "name": "hosted",
        "location": "external",
        "max_classification": str(Clearance.SECRET),
        "preference": "10",
        "base_url": "https://llm.example.com/v1",
        "model": "m",
        "model_version": "",
        "api_key_env": "KB_ENDPOINT_KEY_HOSTED",
    }
    page = client.post("/admin/routing/modelendpoint/add/", form)
    assert page.status_code == 200 and "public material only" in page.content.decode()
    assert not ModelEndpoint.objects.exists()
    form["max_classification"] = str(Clearance.PUBLIC)
    assert client.post("/admin/routing/modelendpoint/add/", form).status_code == 302
    row = ModelEndpoint.objects.get()
    assert row.enabled is False
    created = AuditRecord.objects.get(action="endpoint.created")
    assert created.actor == "root"
    assert created.details["changes"]["api_key_env"] == [None, "KB_ENDPOINT_KEY_HOSTED"]
    row.enabled = True
    row.save()
    changed = AuditRecord.objects.get(action="endpoint.changed")
    assert changed.details["changes"] == {"enabled": [False, True]}


def test_the_policy_page_is_for_superadmins_only() -> None:
    root = User.objects.create_superuser("root", password="root-password-1")
    plain = User.objects.create_user("dave", password="dave-password-1")
    ModelEndpoint.objects.create(
        name="hosted-public",
        base_url="https://llm.example.com/v1",
        model="m",
        location=ModelEndpoint.Location.EXTERNAL,
    )
    for _ in range(2):
        record(
            "llm.routed",
            actor=plain,
            details={
                "endpoint": "configured",
                "location": "on_premises",
                "classification": "secret",
            },
        )
    client = Client()
    client.force_login(plain)
    assert client.get("/routing/").status_code == 404
    refused = AuditRecord.objects.get(action="access.denied")
    assert refused.target_id == "routing" and refused.actor == "dave"
    client.force_login(root)
    page = client.get("/routing/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "hosted-public" in text and "switched off" in text
    assert 'href="/routing/"' in text
    # Counted by endpoint and level, without who asked.
    assert (
        "<td>configured</td><td>On premises (the company&#x27;s own machines)</td><td>Secret</td>"
        in text
    )
    assert "dave" not in text
