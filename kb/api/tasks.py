"""Celery tasks of the REST API app: webhook delivery (kb/api/webhooks.py)."""

from __future__ import annotations

from celery import shared_task

from kb.api import webhooks


@shared_task(name=webhooks.DELIVER_TASK, ignore_result=True)
def deliver_webhooks_task() -> int:
    """Send every webhook delivery that is due. Queued when deliveries are written, and run
    periodically (beat; the embedded worker's timer) for retries and anything a lost message
    missed. Safe to run on several workers at once."""
    return webhooks.deliver_due()
