"""Under ASGI (uvicorn in compose), a streamed answer goes out piece by piece as it is
written, not all at once at the end (kb/asgi.py)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

from django.http import StreamingHttpResponse

from kb.asgi import StreamingASGIHandler


def test_pieces_are_sent_as_they_are_produced_in_one_thread() -> None:
    threads: set[str] = set()
    produced_at: list[float] = []

    def slow() -> Iterator[bytes]:
        for n in range(3):
            threads.add(threading.current_thread().name)
            produced_at.append(time.monotonic())
            yield f"event: answer\ndata: {n}\n\n".encode()
            time.sleep(0.3)

    sent_at: list[tuple[float, bytes]] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            sent_at.append((time.monotonic(), message["body"]))

    response = StreamingHttpResponse(slow(), content_type="text/event-stream")
    asyncio.run(StreamingASGIHandler().send_response(response, send))
    assert [body for _, body in sent_at] == [
        f"event: answer\ndata: {n}\n\n".encode() for n in range(3)
    ]
    # The first piece left before the iterator had finished (it sleeps 0.9 s in all).
    assert sent_at[0][0] < produced_at[-1]
    assert len(threads) == 1 and "MainThread" not in threads


def test_an_error_in_the_stream_reaches_the_server() -> None:
    def broken() -> Iterator[bytes]:
        yield b"first"
        raise RuntimeError("model went away")

    async def send(message: dict[str, Any]) -> None:
        return None

    response = StreamingHttpResponse(broken())
    try:
        asyncio.run(StreamingASGIHandler().send_response(response, send))
    except RuntimeError as exc:
        assert "model went away" in str(exc)
    else:
        raise AssertionError("the error was swallowed")
