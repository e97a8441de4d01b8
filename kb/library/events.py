"""What the library announces, so other apps can act on it without the library importing them.

The API's webhooks listen to `version_finished` (kb/api/apps.py); the library knows nothing of
webhooks. Receivers run inside the sender's transaction: one that has work to do once the state
change is durable registers it with `transaction.on_commit`.
"""

from __future__ import annotations

import logging

from django.dispatch import Signal

logger = logging.getLogger(__name__)

# A document version reached a final state: indexed, failed or quarantined. `version_id`.
version_finished = Signal()


def announce_version_finished(version_id: int) -> None:
    """Tell the listeners. Never raises: a listener's problem must not fail an ingestion."""
    for receiver, outcome in version_finished.send_robust(sender=None, version_id=version_id):
        if isinstance(outcome, Exception):
            logger.error("%r failed on version %s finishing: %s", receiver, version_id, outcome)
