"""Liveness (`/healthz`) and readiness (`/readyz`) for the orchestrator's probes.

Liveness touches nothing: the process answers. Readiness checks every component a request
needs, each in its own thread and bounded by KB_HEALTH_TIMEOUT_SECONDS, and answers 200 when
the required ones are up and 503 otherwise. The language model is not required: without it
answers are the most relevant passages, so its being down makes readiness "degraded" (200).

The body is seen by whoever can reach the port (probes carry no credentials): it names
components and states, never a URL with credentials, a password or an API key.
"""

from __future__ import annotations

import os
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connections

from kb.library.components import get_embedder, get_index
from kb.library.models import IndexGeneration
from kb.routing.clients import local_model_status

FALLBACK = "answers fall back to the most relevant passages"


@dataclass
class Check:
    status: str  # "up" or "down"
    detail: str
    latency_ms: float = 0.0
    required: bool = True


class Down(Exception):
    """A check's own failure, with a detail fit for the body."""


# --- the checks ---------------------------------------------------------------------------
# Each returns its detail when the component is up and raises when it is not.


def check_database() -> str:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return f"{connections['default'].vendor}: SELECT 1 answered"
    finally:
        connections.close_all()  # this thread's connection; the pool thread is reused


def check_broker() -> str:
    url = str(settings.CELERY_BROKER_URL)
    scheme = urlsplit(url).scheme.lower()
    timeout = _timeout()
    if scheme == "filesystem":
        folder = Path(settings.CELERY_BROKER_DIR) / "queue"
        if not folder.is_dir():
            raise Down("filesystem broker: the queue folder is missing")
        if not os.access(folder, os.R_OK | os.W_OK):
            raise Down("filesystem broker: the queue folder is not writable")
        return "filesystem broker: queue folder present and writable"
    if scheme in ("redis", "rediss"):
        import redis

        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()
        return f"{scheme}: PING answered"
    from kombu import Connection

    with Connection(url, connect_timeout=timeout) as connection:
        connection.ensure_connection(max_retries=1, timeout=max(1, round(timeout)))
    return f"{scheme}: connected"


def check_vector_index() -> str:

    try:
        # Not active_generation(): a probe must never start building an index.
        generation = IndexGeneration.objects.filter(state=IndexGeneration.State.ACTIVE).first()
    finally:
        connections.close_all()
    if generation is None:
        raise Down("no index generation is served yet (the first start builds one)")
    index = get_index()
    if generation.collection_name not in index.collection_names():
        raise Down(f"the served collection {generation.collection_name} is missing")
    points = index.count(generation.collection_name)
    backend = "qdrant server" if settings.QDRANT_URL else "qdrant edge"
    return f"{backend}: collection {generation.collection_name} holds {points} points"


def check_embedding_model() -> str:
    """Loading the model here would cost seconds and gigabytes on every probe: report whether
    it is loaded, and if not, whether its files are where the loader will look."""

    embedder = get_embedder()  # constructing one loads nothing
    name = settings.EMBEDDING_MODEL or "all-MiniLM-L6-v2 (bundled)"
    if embedder.loaded:
        return f"{name}: loaded"
    problem = embedder.unavailable_reason()
    if problem is not None:
        raise Down(f"{name}: {problem}")
    return f"{name}: not loaded yet (loads on first use)"


def check_llm() -> str:
    if settings.LLM_BASE_URL:
        url = str(settings.LLM_BASE_URL).rstrip("/") + "/models"
        if urlsplit(url).scheme not in ("http", "https"):
            raise Down(f"LLM_BASE_URL is not an http(s) URL; {FALLBACK}")
        request = urllib.request.Request(  # noqa: S310 (http or https, checked above)
            url, headers={"Authorization": f"Bearer {settings.LLM_API_KEY}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=_timeout()) as response:  # noqa: S310
                response.read(64 * 1024)
        except urllib.error.HTTPError as exc:
            raise Down(f"OpenAI-compatible server answered HTTP {exc.code}; {FALLBACK}") from exc
        except (OSError, ValueError) as exc:
            raise Down(f"OpenAI-compatible server unreachable ({exc}); {FALLBACK}") from exc
        return f"OpenAI-compatible server: model {settings.LLM_MODEL} listed as reachable"
    if settings.LLM_GGUF_PATH:
        up, detail = local_model_status()
        if not up:
            raise Down(f"{detail}; {FALLBACK}")
        return detail
    return "none configured: extractive answers (the most relevant passages)"


CHECKS: dict[str, tuple[Callable[[], str], bool]] = {
    # name: (check, required for readiness)
    "database": (check_database, True),
    "broker": (check_broker, True),
    "vector_index": (check_vector_index, True),
    "embedding_model": (check_embedding_model, True),
    "llm": (check_llm, False),
}


def _in_daemon_thread(check: Callable[[], str]) -> Future[Check]:
    """Run one check in a thread of its own: a hung check keeps its thread until it returns,
    but never the probe, and never the process's exit (a pool's threads are joined at exit,
    so one check stuck on a dead service would keep a stopped portal from ending)."""
    future: Future[Check] = Future()

    def run() -> None:
        future.set_result(_timed(check))

    threading.Thread(target=run, name=f"kb-readyz-{check.__name__}", daemon=True).start()
    return future


def _timeout() -> float:
    return float(settings.KB_HEALTH_TIMEOUT_SECONDS)


_PLACEHOLDER_KEY = "not-needed"  # LLM_API_KEY's default: no secret
_USERINFO = re.compile(r"(?i)([a-z][a-z0-9+.-]*://)[^/@\s]*@")


def redact(text: str) -> str:
    """Remove credentials from a detail: URL user-info and any configured secret value."""
    text = _USERINFO.sub(r"\1***@", text)
    secrets = [
        getattr(settings, "LLM_API_KEY", ""),
        getattr(settings, "QDRANT_API_KEY", ""),
        getattr(settings, "KB_METRICS_TOKEN", ""),
        str(settings.DATABASES["default"].get("PASSWORD", "")),
    ]
    for url in (settings.CELERY_BROKER_URL, settings.LLM_BASE_URL, settings.QDRANT_URL):
        if url:
            secrets.append(urlsplit(str(url)).password or "")
    for value in secrets:
        if value and len(str(value)) >= 4 and value != _PLACEHOLDER_KEY:
            text = text.replace(str(value), "***")
    return text[:300]


def run_checks() -> dict[str, Check]:
    started = time.monotonic()
    futures = {name: _in_daemon_thread(check) for name, (check, _) in CHECKS.items()}
    results: dict[str, Check] = {}
    deadline = started + _timeout()
    for name, future in futures.items():
        required = CHECKS[name][1]
        try:
            result = future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            result = Check(
                "down",
                f"no answer within {_timeout():g} s" + ("" if required else f"; {FALLBACK}"),
                (time.monotonic() - started) * 1000,
            )
        result.required = required
        result.detail = redact(result.detail)
        results[name] = result
    return results


def _timed(check: Callable[[], str]) -> Check:
    started = time.monotonic()
    try:
        detail = check()
        status = "up"
    except Down as exc:
        detail, status = str(exc), "down"
    except Exception as exc:  # any failure of a component is a "down", never a 500
        detail, status = f"{type(exc).__name__}: {exc}", "down"
    return Check(status, detail, (time.monotonic() - started) * 1000)
