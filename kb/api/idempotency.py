"""`Idempotency-Key`: a retried upload or ask returns the first response and does nothing twice.

A streamed ask stores its final `done` event when the stream ends; its retry gets that event
again (after a `sources` event), not a second answer.

The first request with a key claims it (a unique row per token and key) before it runs, so a
retry that arrives while the first is still running gets 409 instead of running again. A
finished response (any status below 500) is stored and replayed with `Idempotent-Replayed:
true`; a 5xx, or a refusal raised before the view answered (an invalid body, 403, 404),
releases the key so the retry runs for real. The same key with a different request (method,
path, body) is refused with 422: it is a client bug, not a retry.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from typing import Any

from django.db import IntegrityError, transaction
from django.http import StreamingHttpResponse
from django.http.response import HttpResponseBase
from rest_framework.request import Request
from rest_framework.response import Response

from kb.answering.streaming import sse
from kb.api.models import IdempotentRequest
from kb.api.problems import ProblemResponse
from kb.api.scope import token_auth

HEADER = "HTTP_IDEMPOTENCY_KEY"
# How a finished stream's result is stored: replayed as one `done` event.
STREAM_RESULT = "stream_done"


def _fingerprint(request: Request) -> str:
    digest = hashlib.sha256(f"{request.method} {request.path}\n".encode())
    data: Any = request.data
    if request.content_type.startswith("multipart/"):
        for name in sorted(data.keys()):
            for value in data.getlist(name):
                digest.update(name.encode() + b"=")
                if hasattr(value, "chunks"):
                    for chunk in value.chunks():
                        digest.update(chunk)
                    value.seek(0)
                else:
                    digest.update(str(value).encode())
    else:
        digest.update(request.body)
    return digest.hexdigest()


def idempotent(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    @functools.wraps(view)
    def wrapper(self: Any, request: Request, *args: Any, **kwargs: Any) -> HttpResponseBase:
        key = str(request.META.get(HEADER, "")).strip()
        if not key:
            return view(self, request, *args, **kwargs)
        if len(key) > 200 or not key.isprintable():
            return ProblemResponse(400, "Idempotency-Key must be at most 200 printable characters.")
        token = token_auth(request).token
        fingerprint = _fingerprint(request)
        try:
            with transaction.atomic():
                claim = IdempotentRequest.objects.create(
                    token=token, key=key, fingerprint=fingerprint
                )
        except IntegrityError:
            earlier = IdempotentRequest.objects.get(token=token, key=key)
            if earlier.fingerprint != fingerprint:
                return ProblemResponse(
                    422,
                    "This Idempotency-Key was used for a different request.",
                    kind="idempotency-key-reused",
                )
            if earlier.status is None:
                return ProblemResponse(
                    409, "A request with this Idempotency-Key is still running; retry later."
                )
            if isinstance(earlier.body, dict) and STREAM_RESULT in earlier.body:
                replay: HttpResponseBase = replay_stream(earlier.body[STREAM_RESULT])
            else:
                replay = Response(earlier.body, status=earlier.status)
            replay["Idempotent-Replayed"] = "true"
            return replay
        request.idempotency_claim = claim.pk  # type: ignore[attr-defined]  # read by the response hook; the request has no such field
        try:
            response = view(self, request, *args, **kwargs)
        except BaseException:
            # A refusal raised before anything happened (invalid body, 403, 404) or a crash:
            # release the key, or every retry would be told "still running" forever.
            claim.delete()
            raise
        if response.status_code >= 500:
            claim.delete()  # not final: let a retry run for real
            return response
        if not isinstance(response, Response):
            # A stream records its result itself when it ends (see `remember_stream`); until
            # then a retry is told the first request is still running.
            return response
        IdempotentRequest.objects.filter(pk=claim.pk).update(
            status=response.status_code, body=response.data
        )
        return response

    return wrapper


def remember_stream(request: Request, done: dict[str, Any]) -> None:
    """Called by a streaming view when its `done` event went out: a retry now replays it."""
    claim = getattr(request, "idempotency_claim", None)
    if claim is not None:
        IdempotentRequest.objects.filter(pk=claim).update(status=200, body={STREAM_RESULT: done})


def replay_stream(done: dict[str, Any]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        iter([sse("sources", done.get("sources", [])), sse("done", done)]),
        content_type="text/event-stream; charset=utf-8",
    )
    response["Cache-Control"] = "no-cache"
    return response


def release_unfinished_stream(request: Request) -> None:
    """Called when a stream closes: if it never reached `done` (the client went away, the
    server failed), the key is released so a retry runs for real instead of getting 409."""
    claim = getattr(request, "idempotency_claim", None)
    if claim is not None:
        IdempotentRequest.objects.filter(pk=claim, status__isnull=True).delete()
