"""Periodic audit work for Celery beat (and the embedded worker's timer)."""

from __future__ import annotations

import logging

from celery import shared_task

from kb.audit import context
from kb.audit.checkpoints import write_checkpoint
from kb.audit.shipping import ship_pending

logger = logging.getLogger("kb.audit")


@shared_task(name="audit.checkpoint", ignore_result=True)
def checkpoint() -> None:

    with context.acting(context.ActorContext(via="worker")):
        written = write_checkpoint()
    if written is not None:
        logger.info("audit checkpoint signed at #%s", written.seq)


@shared_task(name="audit.ship", ignore_result=True)
def ship() -> None:

    shipped = ship_pending()
    if shipped:
        logger.info("shipped %s audit records to the SIEM", shipped)
