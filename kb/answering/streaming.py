"""The one encoder of a streamed answer, for both doors: server-sent events.

A door passes the act's events and how it renders each kind (its own JSON for the sources
and the finished answer, its own error bodies); the loop, the failure handling and the
response headers are here once. The body is produced after the view has returned, so the
request's audit context (who, from where, request id) and language are carried into it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from django.http import StreamingHttpResponse
from django.utils import translation

from inference.answering import Source
from ingest.index.unavailable import IndexUnavailable
from kb.answering.answers import Answer, AnswerEvent
from kb.audit import context as audit_context

logger = logging.getLogger(__name__)


def sse(event: str, data: object) -> bytes:
    """One server-sent event: its name and its data as one line of JSON."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


@dataclass(frozen=True)
class StreamRendering:
    """How a door renders the events of an answer: the sources, the finished answer, and the
    error event's data when the index is down or anything else failed."""

    sources: Callable[[list[Source]], object]
    done: Callable[[Answer], object]
    index_unavailable: Callable[[], object]
    failed: Callable[[], object]


def encode_answer(events: Iterable[AnswerEvent], rendering: StreamRendering) -> Iterator[bytes]:
    """`sources`, `answer` (and `reasoning`) pieces as the model writes them, then `done`;
    or an `error` event where answering failed (the 200 and the headers are gone already)."""
    try:
        for event, payload in events:
            if event == "sources" and isinstance(payload, list):
                yield sse("sources", rendering.sources(payload))
            elif event == "done" and isinstance(payload, Answer):
                yield sse("done", rendering.done(payload))
            else:
                yield sse(event, {"text": payload})
    except IndexUnavailable:
        logger.warning("answering refused: the index is unavailable", exc_info=True)
        yield sse("error", rendering.index_unavailable())
    except Exception:
        logger.exception("answering failed")
        yield sse("error", rendering.failed())


def event_stream(body: Iterator[bytes]) -> StreamingHttpResponse:
    """The response for a stream of events, run in the current request's audit context and
    language; proxies are told to pass each piece on at once."""
    request_context = audit_context.current()
    language = translation.get_language()

    def in_request_context() -> Iterator[bytes]:
        with audit_context.acting(request_context), translation.override(language):
            yield from body

    response = StreamingHttpResponse(
        in_request_context(), content_type="text/event-stream; charset=utf-8"
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
