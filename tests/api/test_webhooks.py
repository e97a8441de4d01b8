"""Webhooks: real documents through the real pipeline, delivered to a real HTTP receiver on
loopback, signed, retried with backoff, given up on, and only ever sent to accounts that may
read the document."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from kb.accounts.models import Department, Membership
from kb.api import webhooks
from kb.api.models import ServiceAccount, Webhook, WebhookDelivery
from kb.api.tasks import deliver_webhooks_task
from kb.audit.models import AuditRecord
from kb.library.ingestion import claim_version, ingest_version, recover_ingestion
from kb.library.models import Collection, Document, DocumentVersion
from kb.library.services import upload_document
from tests.api.conftest import service_account
from tests.ingesting import ingest_text

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "whsec_test_0123456789abcdef"
BOTH = [Webhook.Event.INDEXED.value, Webhook.Event.FAILED.value]


# --- a receiver on loopback --------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: Message  # case-insensitive, as HTTP header names are
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]


@dataclass
class Receiver:
    url: str
    fail_first: int = 0
    requests: list[Received] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                state.requests.append(Received(self.path, self.headers, body))
                failing = len(state.requests) <= state.fail_first
            if self.path == "/moved":
                self.send_response(302)
                self.send_header("Location", "/")
                self.end_headers()
            elif failing:
                self.send_response(500)
                self.end_headers()
                self.wfile.write(b"receiver is down")
            else:
                self.send_response(204)
                self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/kb"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # The receiver is on loopback; a proxy configured in the environment must not intercept.
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def dispatched(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record instead of publishing to the broker: the tests run the task function itself."""
    calls: list[int] = []
    monkeypatch.setattr(webhooks, "dispatch", lambda: calls.append(WebhookDelivery.objects.count()))
    return calls


def subscribe(account: ServiceAccount, url: str, events: list[str] = BOTH) -> Webhook:
    return Webhook.objects.create(account=account, url=url, secret=SECRET, events=events)


def make_due() -> None:
    """Let the backoff pass."""
    WebhookDelivery.objects.update(next_attempt_at=timezone.now())


def assert_signed(request: Received, secret: str = SECRET) -> None:
    header = request.headers["X-KB-Signature"]
    assert webhooks.verify_signature(secret, header, request.body)
    # Independently of the module: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>.
    parts = dict(part.split("=", 1) for part in header.split(","))
    t = int(parts["t"])
    assert abs(time.time() - t) < 60
    expected = hmac.new(
        secret.encode(), f"{t}.".encode() + request.body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)


# --- events ------------------------------------------------------------------------------


@pytest.mark.usefixtures("fresh_index")
def test_an_indexed_document_is_announced_signed(
    departments: dict[str, Department],
    finance_collection: Collection,
    receiver: Receiver,
    dispatched: list[int],
) -> None:
    webhook = subscribe(service_account("erp", departments["finance"]), receiver.url)
    document_id = ingest_text(finance_collection, "travel.md", "# Travel\n\nHotels: 180 EUR.\n")
    delivery = WebhookDelivery.objects.get()
    assert (delivery.webhook, delivery.event) == (webhook, "document.indexed")
    assert dispatched == [1]  # a worker was asked to send it once it was written
    assert receiver.requests == []

    assert deliver_webhooks_task() == 1
    [request] = receiver.requests
    assert request.path == "/hooks/kb"
    assert request.headers["X-KB-Event"] == "document.indexed"
    assert request.headers["X-KB-Delivery"] == str(delivery.pk)
    assert request.headers["Content-Type"] == "application/json"
    assert_signed(request)
    body = request.json
    document = Document.objects.get(pk=document_id)
    version = DocumentVersion.objects.get(document=document)
    assert body["event"] == "document.indexed" and body["delivery"] == delivery.pk
    assert body["document"] == {
        "id": document_id,
        "collection": finance_collection.pk,
        "path": "travel.md",
        "title": document.title,
        "version": 1,
        "status": "indexed",
        "error_code": "",
        "error": "",
        "chunks": version.chunk_count,
        "pages": version.page_count,
    }
    assert version.chunk_count >= 1
    assert body["occurred_at"] == version.finished_at.isoformat()  # type: ignore[union-attr]

    delivery.refresh_from_db()
    assert delivery.delivered_at is not None and delivery.attempts == 1
    sent = AuditRecord.objects.get(action="webhook.delivered")
    assert sent.target_id == str(delivery.webhook_id) and sent.document_id_list == [
        body["document"]["id"]
    ]
    assert delivery.last_error == "" and delivery.gave_up_at is None
    assert deliver_webhooks_task() == 0  # delivered once, not again
    assert len(receiver.requests) == 1


@pytest.mark.usefixtures("fresh_index")
def test_failed_and_quarantined_documents_are_announced(
    departments: dict[str, Department],
    finance_collection: Collection,
    receiver: Receiver,
    dispatched: list[int],
) -> None:
    subscribe(service_account("erp", departments["finance"]), receiver.url)
    indexed_only = subscribe(
        service_account("crm", departments["finance"]), receiver.url, ["document.indexed"]
    )

    data = b"%PDF-1.4\nnot really a PDF"
    broken = upload_document(
        collection=finance_collection,
        name="broken.pdf",
        stream=io.BytesIO(data),
        size=len(data),
        uploaded_by_id=None,
    )
    assert ingest_version(broken.version.pk) == DocumentVersion.Status.FAILED

    data = b"# Evil\n\nx\n"
    evil = upload_document(
        collection=finance_collection,
        name="evil.md",
        stream=io.BytesIO(data),
        size=len(data),
        uploaded_by_id=None,
    ).version
    for attempt in range(1, 4):  # its worker dies three times: quarantined on the fourth claim
        assert claim_version(evil.pk, f"worker-{attempt}@host:1") is not None
        assert recover_ingestion(f"worker-{attempt}@host:")["requeued"] == 1
    assert ingest_version(evil.pk) == "skipped"

    assert not WebhookDelivery.objects.filter(webhook=indexed_only).exists()
    assert deliver_webhooks_task() == 2
    assert [r.headers["X-KB-Event"] for r in receiver.requests] == ["document.failed"] * 2
    for request in receiver.requests:
        assert_signed(request)
    failed, quarantined = (r.json["document"] for r in receiver.requests)
    assert (failed["path"], failed["status"]) == ("broken.pdf", "failed")
    assert failed["error_code"] and failed["error"] and failed["chunks"] == 0
    assert (quarantined["path"], quarantined["status"]) == ("evil.md", "quarantined")
    assert quarantined["error_code"] == "quarantined" and "died 3 times" in quarantined["error"]


@pytest.mark.usefixtures("fresh_index")
def test_only_accounts_that_may_read_the_collection_hear_of_it(
    departments: dict[str, Department],
    finance_collection: Collection,
    receiver: Receiver,
    dispatched: list[int],
) -> None:
    outsider = subscribe(service_account("eng-erp", departments["engineering"]), receiver.url)
    inactive = subscribe(service_account("old-erp", departments["finance"]), receiver.url)
    inactive.is_active = False
    inactive.save()
    reader_account = service_account("erp", departments["finance"])
    reader = subscribe(reader_account, receiver.url)

    ingest_text(finance_collection, "budget.md", "# Budget\n\nSecret numbers.\n")
    assert list(WebhookDelivery.objects.values_list("webhook", flat=True)) == [reader.pk]
    assert not WebhookDelivery.objects.filter(webhook__in=[outsider, inactive]).exists()

    # Access is checked again when sending: a membership removed since the event stops it.
    Membership.objects.filter(user=reader_account.user).delete()
    assert deliver_webhooks_task() == 0
    assert receiver.requests == []
    delivery = WebhookDelivery.objects.get()
    assert delivery.gave_up_at is not None and delivery.attempts == 0
    assert "may no longer read" in delivery.last_error


@pytest.mark.usefixtures("fresh_index")
def test_a_webhook_failure_never_fails_an_ingestion(
    departments: dict[str, Department],
    finance_collection: Collection,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    subscribe(service_account("erp", departments["finance"]), receiver.url)

    def broken(version_id: int) -> int:
        raise RuntimeError("webhook tables are gone")

    monkeypatch.setattr(webhooks, "enqueue_document_event", broken)
    ingest_text(finance_collection, "a.md", "# A\n\nText.\n")  # asserts it was indexed
    assert not WebhookDelivery.objects.exists()


@pytest.mark.usefixtures("fresh_index")
def test_deliveries_are_written_only_when_the_transaction_commits(
    departments: dict[str, Department],
    finance_collection: Collection,
    receiver: Receiver,
    dispatched: list[int],
) -> None:
    subscribe(service_account("erp", departments["finance"]), receiver.url)
    ingest_text(finance_collection, "a.md", "# A\n\nText.\n")
    version = DocumentVersion.objects.get()
    assert WebhookDelivery.objects.count() == 1

    with pytest.raises(RuntimeError), transaction.atomic():
        webhooks.notify_when_committed(version.pk)
        raise RuntimeError("rolled back")
    assert WebhookDelivery.objects.count() == 1

    with transaction.atomic():
        webhooks.notify_when_committed(version.pk)
        assert WebhookDelivery.objects.count() == 1
    assert WebhookDelivery.objects.count() == 2


# --- retries -----------------------------------------------------------------------------


def _queue(collection: Collection, *hooks: Webhook) -> list[WebhookDelivery]:
    """Deliveries of a made-up event (for the tests that need no ingestion)."""
    document = Document.objects.create(collection=collection, path="x.md", title="X")
    payload = {
        "event": "document.indexed",
        "document": {"id": document.pk, "collection": collection.pk, "path": "x.md"},
        "occurred_at": timezone.now().isoformat(),
    }
    return [
        WebhookDelivery.objects.create(webhook=hook, event="document.indexed", payload=payload)
        for hook in hooks
    ]


def test_a_failing_receiver_gets_it_on_the_third_attempt_with_growing_waits(
    departments: dict[str, Department], finance_collection: Collection, receiver: Receiver
) -> None:
    receiver.fail_first = 2
    [delivery] = _queue(
        finance_collection, subscribe(service_account("erp", departments["finance"]), receiver.url)
    )

    waits = []
    for attempt in (1, 2):
        before = timezone.now()
        assert deliver_webhooks_task() == 0
        delivery.refresh_from_db()
        assert delivery.attempts == attempt and delivery.delivered_at is None
        assert (
            delivery.last_error.startswith("HTTP 500") and "receiver is down" in delivery.last_error
        )
        waits.append((delivery.next_attempt_at - before).total_seconds())
        assert deliver_webhooks_task() == 0  # not due yet: nothing is sent
        assert len(receiver.requests) == attempt
        make_due()
    assert 7.5 - 1 <= waits[0] <= 10 + 1
    assert 15 - 1 <= waits[1] <= 20 + 1
    assert waits[1] > waits[0]

    assert deliver_webhooks_task() == 1
    delivery.refresh_from_db()
    assert delivery.attempts == 3 and delivery.delivered_at is not None
    assert delivery.last_error == "" and delivery.gave_up_at is None
    assert len(receiver.requests) == 3
    assert {r.headers["X-KB-Delivery"] for r in receiver.requests} == {str(delivery.pk)}
    for request in receiver.requests:
        assert_signed(request)


def test_it_gives_up_after_the_last_attempt(
    departments: dict[str, Department],
    finance_collection: Collection,
    receiver: Receiver,
    settings: Any,
) -> None:
    settings.KB_WEBHOOK_MAX_ATTEMPTS = 3
    receiver.fail_first = 1000
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    account = service_account("erp", departments["finance"])
    refused, unreachable = _queue(
        finance_collection,
        subscribe(account, receiver.url),
        subscribe(account, f"http://127.0.0.1:{closed_port}/hook"),
    )

    for _ in range(5):
        assert deliver_webhooks_task() == 0
        make_due()
    for delivery in (refused, unreachable):
        delivery.refresh_from_db()
        assert delivery.attempts == 3 and delivery.gave_up_at is not None
        assert delivery.delivered_at is None
    assert refused.last_error.startswith("HTTP 500")
    assert unreachable.last_error.startswith("connection failed")
    assert len(receiver.requests) == 3


def test_redirects_are_not_followed_and_other_schemes_never_opened(
    departments: dict[str, Department], finance_collection: Collection, receiver: Receiver
) -> None:
    account = service_account("erp", departments["finance"])
    moved_url = receiver.url.replace("/hooks/kb", "/moved")
    moved, local_file = _queue(
        finance_collection,
        subscribe(account, moved_url),
        subscribe(account, "file:///etc/passwd"),
    )
    assert deliver_webhooks_task() == 0
    assert [r.path for r in receiver.requests] == ["/moved"]  # "/" was never requested
    moved.refresh_from_db()
    assert moved.attempts == 1 and moved.gave_up_at is None and moved.delivered_at is None
    assert moved.last_error.startswith("HTTP 302: redirects are not followed")
    local_file.refresh_from_db()
    assert local_file.attempts == 0 and local_file.gave_up_at is not None
    assert "not http or https" in local_file.last_error


def test_two_sweeps_at_once_send_each_delivery_once(
    departments: dict[str, Department], finance_collection: Collection, receiver: Receiver
) -> None:
    account = service_account("erp", departments["finance"])
    deliveries = _queue(finance_collection, *(subscribe(account, receiver.url) for _ in range(6)))
    results: list[int] = []

    def sweep() -> None:
        from django.db import connection

        try:
            results.append(deliver_webhooks_task())
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sum(results) == len(deliveries)
    sent = sorted(int(r.headers["X-KB-Delivery"]) for r in receiver.requests)
    assert sent == sorted(d.pk for d in deliveries)


# --- signatures --------------------------------------------------------------------------


def test_signatures_reject_tampering_replays_and_other_secrets() -> None:
    body = b'{"event":"document.indexed","document":{"id":1}}'
    now = int(time.time())
    header = webhooks.signature_header(SECRET, body, now)
    assert webhooks.verify_signature(SECRET, header, body)
    assert webhooks.verify_signature(SECRET, header, body.decode())
    assert not webhooks.verify_signature(SECRET, header, body.replace(b"1", b"2"))
    assert not webhooks.verify_signature("another-secret", header, body)

    old = webhooks.signature_header(SECRET, body, now - 301)
    assert not webhooks.verify_signature(SECRET, old, body)
    assert webhooks.verify_signature(SECRET, old, body, tolerance_seconds=600)
    assert not webhooks.verify_signature(
        SECRET, webhooks.signature_header(SECRET, body, now + 301), body
    )
    # The timestamp is signed: moving it forward breaks the signature.
    v1 = header.split("v1=")[1]
    assert not webhooks.verify_signature(SECRET, f"t={now + 1},v1={v1}", body)

    for bad in ("", "garbage", f"t={now}", f"v1={v1}", f"t=soon,v1={v1}", f"t={now},v0={v1}"):
        assert not webhooks.verify_signature(SECRET, bad, body)
    assert not webhooks.verify_signature(SECRET, None, body)
    # While a secret is rotated a sender may sign with both; one match is enough.
    rotated = f"t={now},v1={webhooks.compute_signature('old-secret', now, body)},v1={v1}"
    assert webhooks.verify_signature(SECRET, rotated, body)


def test_backoff_doubles_with_jitter_and_is_capped_at_an_hour() -> None:
    for attempt, base in ((1, 10), (2, 20), (3, 40), (4, 80)):
        for _ in range(20):
            assert 0.75 * base <= webhooks.backoff_seconds(attempt) <= base
    assert all(2700 <= webhooks.backoff_seconds(n) <= 3600 for n in (10, 20, 100))
    assert timedelta(seconds=webhooks.backoff_seconds(1000)) <= timedelta(hours=1)
