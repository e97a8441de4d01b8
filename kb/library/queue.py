"""Work handed to the Celery workers, by task name.

The modules that queue work (uploads in services.py, the purge after a new version in
ingestion.py) would otherwise import the task module, which imports them back to run the
work: they queue it by name (kb/celery.py `queue_task`).
"""

from __future__ import annotations

from kb.celery import queue_task

INGEST_VERSION = "library.ingest_version"
PURGE_VERSION = "library.purge_version"
RECOVER_INGESTION = "library.recover_ingestion"
REBUILD_INDEX = "library.rebuild_index"


def queue_ingestion(version_id: int) -> None:
    queue_task(INGEST_VERSION, version_id)


def queue_purge(version_id: int, countdown: float) -> None:
    queue_task(PURGE_VERSION, version_id, countdown=countdown)
