"""The index could not be reached: a Qdrant server down, restarting or cut off.

Callers turn this into a clear "try again shortly" (the API's problem-details 503, the portal's
notice) instead of a server error; ingestion retries it like any other transient failure.
"""

from __future__ import annotations


class IndexUnavailable(RuntimeError):
    """The vector index did not answer; nothing about the request itself was wrong."""


def is_unreachable(exc: BaseException) -> bool:
    """Whether `exc`, or anything that caused it, is a failure to reach the index server:
    a socket error or timeout, or the client's own transport failure (qdrant-client wraps
    httpx's in ResponseHandlingException). An error the server answered with is not."""
    from httpx import TransportError
    from qdrant_client.http.exceptions import ResponseHandlingException

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError | TransportError | ResponseHandlingException):
            return True
        current = current.__cause__ or current.__context__
    return False
