"""Celery tasks: take an id, call one service, safe to run twice.

Ingestion runs with acks_late (settings): if a worker dies mid-document the broker hands the
message to another worker, and the claim in kb/library/ingestion.py counts the attempt, so a
file that keeps killing workers is quarantined instead of looping forever.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings
from django.utils import timezone

from ingest.parsing import ocr_unavailable_reason
from kb.library import indexing, ingestion, queue

logger = logging.getLogger(__name__)

# Imported by a worker's main process before its pool starts, so every claim this node makes
# is newer than this; older claims with its name belong to a previous, dead incarnation.
PROCESS_STARTED = timezone.now()


@shared_task(
    bind=True,
    name=queue.INGEST_VERSION,
    acks_late=True,
    autoretry_for=(ingestion.TransientIngestError,),
    retry_backoff=5,
    retry_backoff_max=300,
    max_retries=8,
)
def ingest_version_task(self: Any, version_id: int) -> str:
    return ingestion.ingest_version(version_id, ingestion.worker_name(self.request.hostname))


@shared_task(name=queue.PURGE_VERSION, acks_late=True)
def purge_version_task(version_id: int) -> bool:
    return ingestion.purge_version(version_id)


@shared_task(name=queue.RECOVER_INGESTION)
def recover_ingestion_task() -> dict[str, int]:
    return ingestion.recover_ingestion()


@shared_task(name=queue.REBUILD_INDEX, acks_late=True)
def rebuild_index_task(model_name: str | None = None) -> str:
    return indexing.rebuild_index(model_name).collection_name


def on_worker_start(hostname: str) -> None:
    """A worker node starts: anything it held before is dead, and the index may need a new
    generation if EMBEDDING_MODEL or the index layout changed."""
    result = ingestion.recover_ingestion(ingestion.node_prefix(hostname), PROCESS_STARTED)
    logger.info("worker %s start-up recovery: %s", hostname, result)
    if problem := ocr_unavailable_reason(tuple(settings.KB_OCR_LANGUAGES)):
        logger.warning("OCR is off: %s; scanned PDFs and images fail with this reason", problem)
    if settings.EMBEDDING_FALLBACK_NOTICE:
        logger.warning("%s", settings.EMBEDDING_FALLBACK_NOTICE)
    indexing.ensure_index()
    if indexing.configured_model_differs():
        logger.warning(
            "EMBEDDING_MODEL or the index layout changed: rebuilding the index into a new "
            "collection; the current one keeps serving until the switch"
        )
        rebuild_index_task.delay()


@worker_ready.connect
def _recover_on_worker_ready(sender: Any = None, **kwargs: Any) -> None:
    on_worker_start(str(getattr(sender, "hostname", "") or ""))
