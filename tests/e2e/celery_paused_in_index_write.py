"""`celery` as `python -m celery` runs it, stopped for good at one step of an index write.

The worker-crash test (tests/e2e/test_worker_crash.py) needs its SIGKILL to land inside the
index write, which takes milliseconds, so it cannot be caught by polling the database. Run as
`python -m tests.e2e.celery_paused_in_index_write -A kb worker ...` with

    KB_TEST_PAUSE_VERSION   the version id whose write is to stop
    KB_TEST_PAUSE_AT        "cleared": after its old points are deleted, before the upsert;
                            "written": after its points are upserted, before the version goes
                            live in the database
    KB_TEST_PAUSE_MARKER    a file created when the worker has stopped there

the worker does everything as it otherwise would, then parks the task's thread at that step
(the test kills the process while it waits). Nothing of the product is changed: the adapter
methods are wrapped here, in the test's own process only.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from celery.__main__ import main

from ingest.index.qdrant_edge import QdrantEdgeIndex

_PAUSES = {"cleared": "delete_version", "written": "upsert"}


def _version_of(method: str, args: tuple[Any, ...]) -> int | None:
    # delete_version(collection, version_id); upsert(collection, points)
    if method == "delete_version":
        return int(args[1])
    points = args[1]
    return int(points[0].version_id) if points else None


def _install() -> None:
    step = os.environ.get("KB_TEST_PAUSE_AT", "")
    if not step:
        return
    method = _PAUSES[step]
    version_id = int(os.environ["KB_TEST_PAUSE_VERSION"])
    marker = Path(os.environ["KB_TEST_PAUSE_MARKER"])
    original = getattr(QdrantEdgeIndex, method)

    def paused(self: QdrantEdgeIndex, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        if _version_of(method, args) == version_id:
            marker.write_text(step, encoding="utf-8")
            threading.Event().wait()  # until the test's SIGKILL
        return result

    setattr(QdrantEdgeIndex, method, paused)


if __name__ == "__main__":
    _install()
    main()
