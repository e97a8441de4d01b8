"""Celery tasks: take an id, call one service, safe to run twice."""

from __future__ import annotations

from celery import shared_task

from kb.library import services


@shared_task(name="library.ingest_document", acks_late=True)
def ingest_document_task(document_id: int) -> str:
    return services.ingest_document(document_id)
