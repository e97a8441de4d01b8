"""Prometheus metrics: `/metrics`, the request-latency middleware and `observe_answer`.

Counters and histograms live in the process that observed them. With several web processes
(gunicorn/waitress workers, or several containers) each exposes its own numbers and the
scraper sums them, unless PROMETHEUS_MULTIPROC_DIR is set (to an empty folder shared by the
processes of one host, emptied at start): then prometheus_client's multiprocess mode writes
them to files there and any process's `/metrics` reports all of them. The ingestion gauges are
computed from the database at scrape time, so every process reports the same values.

`/metrics` is answered only to the addresses in KB_METRICS_ALLOWED_IPS (loopback by default;
networks such as 10.0.0.0/8 allowed) or to a request carrying `Authorization: Bearer
<KB_METRICS_TOKEN>` when that is set; anyone else gets a 404, as if it did not exist.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from django.conf import settings
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kb.audit.context import client_ip, current
from kb.library.models import DocumentVersion


class AnsweredQuestion(Protocol):
    """What the metrics read of an answer (kb/answering/answers.py `Answer`), named here so
    this module needs nothing from the app that answers."""

    mode: str
    seconds: float
    prompt_tokens: int
    completion_tokens: int
    first_token_seconds: float | None


logger = logging.getLogger(__name__)

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_ANSWER_SECONDS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)

HTTP_REQUEST_SECONDS = Histogram(
    "kb_http_request_duration_seconds",
    "Time to produce a response, by route name (not path), method and status class.",
    ["route", "method", "status"],
    buckets=_SECONDS,
)
QUESTIONS = Counter(
    "kb_questions_answered",
    "Questions answered, by mode (generated, extractive, not_found) and channel (portal, api).",
    ["mode", "channel"],
)
LLM_TOKENS = Counter(
    "kb_llm_tokens",
    "Tokens the language model read (prompt) and wrote (completion) for answers.",
    ["kind"],
)
ANSWER_SECONDS = Histogram(
    "kb_answer_duration_seconds",
    "Total time to answer a question, retrieval included, by mode.",
    ["mode"],
    buckets=_ANSWER_SECONDS,
)
FIRST_TOKEN_SECONDS = Histogram(
    "kb_llm_time_to_first_token_seconds",
    "Time from the question to the model's first answer token (generated answers).",
    buckets=_ANSWER_SECONDS,
)


def observe_answer(answer: AnsweredQuestion, channel: str | None = None) -> None:
    """Called once per recorded answer. Never raises: metrics must not cost an answer."""
    try:
        if channel is None:
            channel = "api" if current().via == "api" else "portal"
        QUESTIONS.labels(mode=answer.mode, channel=channel).inc()
        ANSWER_SECONDS.labels(mode=answer.mode).observe(max(0.0, answer.seconds))
        if answer.prompt_tokens:
            LLM_TOKENS.labels(kind="prompt").inc(answer.prompt_tokens)
        if answer.completion_tokens:
            LLM_TOKENS.labels(kind="completion").inc(answer.completion_tokens)
        if answer.first_token_seconds is not None:
            FIRST_TOKEN_SECONDS.observe(max(0.0, answer.first_token_seconds))
    except Exception:
        logger.exception("could not record answer metrics")


class IngestionCollector(Collector):
    """Document versions by status, the ingestion queue and failures by error code, counted
    in the database when scraped (the database is the truth, and shared by all processes)."""

    def describe(self) -> Iterator[Metric]:
        """The families, without values: registering the collector then asks the database
        nothing (the registry would otherwise call collect() at import, before migrations)."""
        yield GaugeMetricFamily("kb_document_versions", "", labels=["status"])
        yield GaugeMetricFamily("kb_ingestion_queue_depth", "")
        yield GaugeMetricFamily("kb_ingestion_failures", "", labels=["error_code"])

    def collect(self) -> Iterator[Metric]:

        try:
            by_status = dict(
                DocumentVersion.objects.values_list("status").annotate(n=Count("id")).order_by()
            )
            failures = dict(
                DocumentVersion.objects.filter(
                    status__in=(DocumentVersion.Status.FAILED, DocumentVersion.Status.QUARANTINED)
                )
                .values_list("error_code")
                .annotate(n=Count("id"))
                .order_by()
            )
        except Exception:
            logger.exception("could not count document versions for /metrics")
            return
        versions = GaugeMetricFamily(
            "kb_document_versions", "Document versions by ingestion status.", labels=["status"]
        )
        for status in DocumentVersion.Status.values:
            versions.add_metric([status], by_status.get(status, 0))
        yield versions
        yield GaugeMetricFamily(
            "kb_ingestion_queue_depth",
            "Versions waiting for or in ingestion (queued, parsing, embedding).",
            value=sum(by_status.get(str(s), 0) for s in DocumentVersion.IN_PROGRESS),
        )
        failed = GaugeMetricFamily(
            "kb_ingestion_failures",
            "Versions whose ingestion failed or was quarantined, by error code.",
            labels=["error_code"],
        )
        for code, count in sorted(failures.items(), key=lambda item: str(item[0])):
            failed.add_metric([code or "unknown"], count)
        yield failed


_ingestion = IngestionCollector()
with contextlib.suppress(ValueError):  # registered already (the module was imported twice)
    REGISTRY.register(_ingestion)


def _registry() -> CollectorRegistry:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # prometheus_client is untyped here
    registry.register(_ingestion)
    return registry


class MetricsMiddleware:
    """Request latency by the matched route's name, so /documents/1/ and /documents/2/ are
    one series; requests that matched no route share "<unmatched>"."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = (match.view_name or match.route) if match is not None else "<unmatched>"
        method = request.method if request.method in _METHODS else "OTHER"
        HTTP_REQUEST_SECONDS.labels(
            route=route, method=method, status=f"{response.status_code // 100}xx"
        ).observe(time.perf_counter() - started)
        return response


_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def _allowed(request: HttpRequest) -> bool:
    token = str(getattr(settings, "KB_METRICS_TOKEN", "") or "")
    if token:
        header = str(request.META.get("HTTP_AUTHORIZATION", ""))
        scheme, _, given = header.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token):
            return True
    try:
        address = ipaddress.ip_address(client_ip(request))
    except ValueError:
        return False
    for allowed in settings.KB_METRICS_ALLOWED_IPS:
        try:
            if address in ipaddress.ip_network(str(allowed).strip(), strict=False):
                return True
        except ValueError:
            logger.warning("KB_METRICS_ALLOWED_IPS: %r is not an address or network", allowed)
    return False


@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD") or not _allowed(request):
        raise Http404
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)
