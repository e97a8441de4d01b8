"""Webhooks: telling an integration that a document was indexed, or failed.

When a version reaches a final state (indexed; failed or quarantined) the ingestion pipeline
announces it (kb/library/events.py `version_finished`; this app listens, kb/api/apps.py) and
`notify_when_committed` runs, which, once the state change has committed, writes one
`WebhookDelivery` per active webhook subscribed to the event whose account may read the
document's collection (the one access rule, kb/accounts/access.py), then queues the Celery
task `api.deliver_webhooks` (kb/api/tasks.py). That task, beat and the embedded worker's timer
all run `deliver_due`, which sends every delivery that is due.

Each request is signed, Stripe-style, so a receiver can check where it came from and refuse
replays:

    X-KB-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

`verify_signature` is the receiver's side. Delivery is at least once: a receiver that answered
2xx but whose answer was lost (a crash, a timeout) gets the same delivery again; the
`X-KB-Delivery` header (and the body's "delivery" field, which the signature covers) identify
it. Anything but a 2xx answer, a redirect included (they are never followed), is retried with
exponential backoff and jitter until KB_WEBHOOK_MAX_ATTEMPTS attempts have failed.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import random
import ssl
import time
import urllib.error
import urllib.request
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from kb.accounts.access import readable_collection_ids
from kb.api.models import Webhook, WebhookDelivery
from kb.audit.trail import record
from kb.celery import queue_task
from kb.library.models import DocumentVersion
from kb.ops import offline

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-KB-Signature"
EVENT_HEADER = "X-KB-Event"
DELIVERY_HEADER = "X-KB-Delivery"
SIGNATURE_VERSION = "v1"
USER_AGENT = "private-kb-webhooks/1"

# Retry n (after the n-th failed attempt) waits BACKOFF_BASE * 2**(n-1) seconds, at most
# BACKOFF_MAX, less up to a quarter at random so that receivers coming back after an outage
# are not hit by every delivery at once.
BACKOFF_BASE_SECONDS = 10.0
BACKOFF_MAX_SECONDS = 3600.0
_JITTER = 0.25
# Deliveries sent per run of the sweep at most; the next run (or task) goes on.
BATCH_LIMIT = 100
# Characters of a receiver's error answer kept in last_error.
_ANSWER_EXCERPT = 200

_EVENT_FOR_STATUS: dict[str, str] = {
    DocumentVersion.Status.INDEXED.value: Webhook.Event.INDEXED.value,
    DocumentVersion.Status.FAILED.value: Webhook.Event.FAILED.value,
    DocumentVersion.Status.QUARANTINED.value: Webhook.Event.FAILED.value,
}
_ALLOWED_SCHEMES = ("http", "https")
_random = random.SystemRandom()


def timeout_seconds() -> float:
    return float(getattr(settings, "KB_WEBHOOK_TIMEOUT_SECONDS", 10))


def max_attempts() -> int:
    return int(getattr(settings, "KB_WEBHOOK_MAX_ATTEMPTS", 8))


# --- events ------------------------------------------------------------------------------


def notify_when_committed(version_id: int) -> None:
    """Called by the ingestion pipeline where a version reached a final state.

    The deliveries are written once the current transaction commits (at once outside one), so
    a rolled-back state change announces nothing. Never raises: a webhook problem must not
    fail an ingestion.
    """

    def enqueue() -> None:
        try:
            enqueue_document_event(version_id)
        except Exception:
            logger.exception("could not queue the webhooks for version %s", version_id)

    try:
        transaction.on_commit(enqueue, robust=True)
    except Exception:
        logger.exception("could not schedule the webhooks for version %s", version_id)


def document_payload(version: DocumentVersion, event: str) -> dict[str, Any]:
    document = version.document
    occurred = version.finished_at or timezone.now()
    return {
        "event": event,
        "document": {
            "id": document.pk,
            "collection": document.collection_id,
            "path": document.path,
            "title": document.title,
            "version": version.number,
            "status": version.status,
            "error_code": version.error_code,
            "error": version.error,
            "chunks": version.chunk_count,
            "pages": version.page_count,
        },
        "occurred_at": occurred.isoformat(),
    }


def enqueue_document_event(version_id: int) -> int:
    """Write the deliveries announcing a version's final state; return how many.

    Call it after the state change committed. Only active webhooks subscribed to the event
    whose account may read the document's collection hear about it.
    """
    version = (
        DocumentVersion.objects.select_related("document__collection").filter(pk=version_id).first()
    )
    if version is None:
        return 0
    event = _EVENT_FOR_STATUS.get(str(version.status))
    if event is None:
        return 0  # superseded before it went live, or not final: nothing to announce
    collection_id = version.document.collection_id
    payload = document_payload(version, event)
    readable: dict[int, frozenset[int]] = {}
    deliveries = []
    for webhook in Webhook.objects.filter(is_active=True).select_related("account__user"):
        if event not in (webhook.events or []):
            continue
        user = webhook.account.user
        if user.pk not in readable:
            readable[user.pk] = readable_collection_ids(user)
        if collection_id in readable[user.pk]:
            deliveries.append(WebhookDelivery(webhook=webhook, event=event, payload=payload))
    if not deliveries:
        return 0
    with transaction.atomic():
        WebhookDelivery.objects.bulk_create(deliveries)
        transaction.on_commit(dispatch, robust=True)
    logger.info("version %s %s: %d webhook deliveries queued", version_id, event, len(deliveries))
    return len(deliveries)


DELIVER_TASK = "api.deliver_webhooks"


def dispatch() -> None:
    """Ask a worker to send what is due now. If the broker is down, the periodic sweep
    (beat, or the embedded worker's timer) sends the deliveries later."""
    try:
        # By name: the task module (kb/api/tasks.py) imports this one to run the delivery.
        queue_task(DELIVER_TASK)
    except Exception:
        logger.warning("could not queue webhook delivery; the periodic sweep will send it")


# --- signatures --------------------------------------------------------------------------


def _as_bytes(body: bytes | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else body


def compute_signature(secret: str, timestamp: int, body: bytes | str) -> str:
    message = f"{timestamp}.".encode() + _as_bytes(body)
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes | str, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},{SIGNATURE_VERSION}={compute_signature(secret, t, body)}"


def verify_signature(
    secret: str,
    header: str | None,
    body: bytes | str,
    tolerance_seconds: int = 300,
    now: float | None = None,
) -> bool:
    """True if `header` (X-KB-Signature) signs `body` (the raw request body, unparsed) with
    `secret` and its timestamp is within `tolerance_seconds` of now, either way.

    Several v1 values are accepted (any one matching), so a sender may sign with an old and a
    new secret while a secret is being rotated.
    """
    if not header or not secret:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif key == SIGNATURE_VERSION:
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        return False
    expected = compute_signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


# --- delivery ----------------------------------------------------------------------------


class DeliveryFailed(Exception):
    """The receiver did not take the delivery (connection error, timeout, non-2xx answer)."""


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A 3xx answer is a failed attempt: a redirect is never followed."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _opener() -> urllib.request.OpenerDirector:
    # Built by hand rather than with build_opener: only http and https handlers, so no other
    # scheme (file:, ftp:, data:) can be opened even if a URL got past the check.
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),  # honours HTTP(S)_PROXY and NO_PROXY like other clients
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(context=ssl.create_default_context()),
        _RefuseRedirects(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


def url_refusal(url: str) -> str:
    """Why a webhook URL will never be sent to, or "" if it may be."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "the webhook URL is not a valid URL"
    if parts.scheme.lower() not in _ALLOWED_SCHEMES:
        return f"the webhook URL's scheme {parts.scheme!r} is not http or https"
    if not parts.hostname:
        return "the webhook URL names no host"
    return ""


def _excerpt(data: bytes) -> str:
    text = data.decode("utf-8", "replace")
    return " ".join(text.split())[:_ANSWER_EXCERPT]


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST `body`; return the 2xx status, or raise DeliveryFailed."""
    refusal = url_refusal(url)
    if refusal:
        raise DeliveryFailed(refusal)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 (scheme checked above; the opener has http(s) handlers only)
    try:
        # The receiver was registered by an admin (with its account's permissions): the
        # offline guard lets this one delivery reach it, nothing else (kb/ops/offline.py).
        with offline.permit(url), _opener().open(request, timeout=timeout) as response:
            response.read(1024)
            return int(response.status)
    except urllib.error.HTTPError as exc:
        try:
            answer = _excerpt(exc.read(_ANSWER_EXCERPT * 4))
        except Exception:
            answer = ""
        finally:
            exc.close()
        if 300 <= exc.code < 400:
            raise DeliveryFailed(
                f"HTTP {exc.code}: redirects are not followed "
                f"(Location: {exc.headers.get('Location', '')})"
            ) from None
        raise DeliveryFailed(f"HTTP {exc.code}: {answer}".strip()) from None
    except urllib.error.URLError as exc:
        raise DeliveryFailed(f"connection failed: {exc.reason}") from None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None


def backoff_seconds(failed_attempts: int) -> float:
    """The wait after the n-th failed attempt: 10 s, 20 s, 40 s ... at most an hour, with
    jitter (each wait is 75-100 % of that, so waits still grow strictly)."""
    exponent = min(max(failed_attempts - 1, 0), 32)
    delay = min(BACKOFF_BASE_SECONDS * 2**exponent, BACKOFF_MAX_SECONDS)
    return float(delay * _random.uniform(1 - _JITTER, 1.0))


def request_body(delivery: WebhookDelivery) -> bytes:
    """The bytes sent (and signed): the stored payload plus the delivery's id."""
    document = {"delivery": delivery.pk, **delivery.payload}
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _due() -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.filter(
        delivered_at__isnull=True, gave_up_at__isnull=True, next_attempt_at__lte=timezone.now()
    )


def _still_allowed(delivery: WebhookDelivery, readable: dict[int, frozenset[int]]) -> str:
    """Why this delivery must not be sent any more, or "" if it may be."""
    webhook = delivery.webhook
    if not webhook.is_active:
        return "the webhook was deactivated"
    refusal = url_refusal(webhook.url)
    if refusal:
        return refusal
    user = webhook.account.user
    if user.pk not in readable:
        readable[user.pk] = readable_collection_ids(user)
    collection_id = (delivery.payload.get("document") or {}).get("collection")
    if collection_id not in readable[user.pk]:
        # Access is decided at send time too: a membership removed since the event was
        # queued stops the delivery.
        return "the webhook's account may no longer read the document's collection"
    return ""


def _attempt(delivery: WebhookDelivery, readable: dict[int, frozenset[int]]) -> bool:
    """Send one claimed delivery and record the outcome; True if it was delivered."""
    now = timezone.now()
    refusal = _still_allowed(delivery, readable)
    if refusal:
        delivery.gave_up_at = now
        delivery.last_error = refusal[:500]
        delivery.save(update_fields=["gave_up_at", "last_error"])
        logger.warning("webhook delivery %s dropped: %s", delivery.pk, refusal)
        return False

    webhook = delivery.webhook
    body = request_body(delivery)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: delivery.event,
        DELIVERY_HEADER: str(delivery.pk),
        SIGNATURE_HEADER: signature_header(webhook.secret, body),
    }
    delivery.attempts += 1
    error = ""
    try:
        post(webhook.url, body, headers, timeout_seconds())
    except DeliveryFailed as exc:
        error = str(exc)
    except Exception as exc:  # a bug must not leave the row due forever
        logger.exception("webhook delivery %s failed unexpectedly", delivery.pk)
        error = f"{type(exc).__name__}: {exc}"

    if not error:
        delivery.delivered_at = timezone.now()
        delivery.last_error = ""
        logger.info("webhook delivery %s (%s) delivered", delivery.pk, delivery.event)
        # Document metadata left for another system: on the trail like any other disclosure.
        document = delivery.payload.get("document", {})
        record(
            "webhook.delivered",
            actor=webhook.account.user,
            target=("webhook", webhook.pk),
            documents=[int(document["id"])] if document.get("id") else [],
            details={"event": delivery.event, "delivery": delivery.pk, "url": webhook.url},
        )
    else:
        delivery.last_error = error[:500]
        if delivery.attempts >= max_attempts():
            delivery.gave_up_at = timezone.now()
            logger.warning(
                "webhook delivery %s to %s: giving up after %d attempts: %s",
                delivery.pk,
                webhook.url,
                delivery.attempts,
                error,
            )
        else:
            delivery.next_attempt_at = timezone.now() + timedelta(
                seconds=backoff_seconds(delivery.attempts)
            )
            logger.info(
                "webhook delivery %s to %s failed (attempt %d): %s; next at %s",
                delivery.pk,
                webhook.url,
                delivery.attempts,
                error,
                delivery.next_attempt_at.isoformat(),
            )
    delivery.save(
        update_fields=["attempts", "delivered_at", "gave_up_at", "last_error", "next_attempt_at"]
    )
    return not error


def deliver_due(limit: int = BATCH_LIMIT) -> int:
    """Send every delivery that is due (at most `limit`); return how many were delivered.

    Each delivery is sent inside its own transaction holding its row lock (SELECT ... FOR
    UPDATE SKIP LOCKED), so any number of workers may run this at once: a row another worker
    is sending is skipped, and once it commits the row is no longer due.
    """
    delivered = 0
    readable: dict[int, frozenset[int]] = {}
    for _ in range(limit):
        with transaction.atomic():
            delivery = (
                _due()
                .select_for_update(skip_locked=True, of=("self",))
                .select_related("webhook__account__user")
                .order_by("next_attempt_at", "pk")
                .first()
            )
            if delivery is None:
                break
            delivered += _attempt(delivery, readable)
    return delivered
