"""The ASGI entry point (uvicorn in compose/).

Django 5.2 serves a streaming response whose content is a plain (synchronous) iterator by
collecting the whole iterator first under ASGI: answers would arrive all at once at the end.
The product's streams (server-sent answers) are synchronous on purpose, so that the same
views also stream under a WSGI server (`manage.py serve`). This handler runs such an
iterator in a worker thread of its own and passes each piece to the event loop as it is
produced: the whole iteration happens in that one thread (the views' context managers, audit
context and language, enter and exit there), and its database connections are closed at the
end. If the client goes away, the iterator is closed at the next piece.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import django
from django.core.handlers.asgi import ASGIHandler
from django.db import close_old_connections, connections
from django.http import StreamingHttpResponse

from kb.env import stop_on_config_error

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kb.settings")

_END = object()


async def stream_in_thread(pieces: Iterator[Any]) -> AsyncIterator[Any]:
    """The pieces of a synchronous iterator, as they come, without blocking the loop."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    stop = threading.Event()

    def produce() -> None:
        close_old_connections()
        try:
            for piece in pieces:
                loop.call_soon_threadsafe(queue.put_nowait, piece)
                if stop.is_set():
                    break
        except BaseException as exc:  # handed to the loop, which raises it there
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()
            connections.close_all()
            loop.call_soon_threadsafe(queue.put_nowait, _END)

    producer = threading.Thread(target=produce, name="kb-stream", daemon=True)
    producer.start()
    try:
        while True:
            item = await queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


class StreamingASGIHandler(ASGIHandler):
    async def send_response(self, response: Any, send: Any) -> None:
        if isinstance(response, StreamingHttpResponse) and not response.is_async:
            pieces: Iterator[Any] = iter(response.streaming_content)  # type: ignore[arg-type]  # a streaming response's content is typed as sync or async; here it is sync
            response.streaming_content = stream_in_thread(pieces)
        await super().send_response(response, send)


with stop_on_config_error():
    django.setup(set_prefix=False)
application = StreamingASGIHandler()
