"""A real Celery worker inside the web process, for the embedded default.

The embedded index (Qdrant Edge) can be open in one process only, so the worker that writes
to it must share the web process. It consumes from the same broker a separate worker would,
through Celery's own WorkController, in a daemon thread with the `solo` pool.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery.utils.nodenames import anon_nodename
from celery.worker import WorkController

from kb.celery import app

logger = logging.getLogger(__name__)


class EmbeddedWorkController(WorkController):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.started = threading.Event()
        super().__init__(*args, **kwargs)

    def on_consumer_ready(self, consumer: object) -> None:
        self.started.set()


class EmbeddedWorker:
    def __init__(self, hostname: str | None = None) -> None:
        self.controller = EmbeddedWorkController(
            app=app,
            hostname=hostname or anon_nodename(),
            pool="solo",
            concurrency=1,
            ready_callback=None,
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
        )
        self.thread = threading.Thread(
            target=self.controller.start, name="embedded-celery-worker", daemon=True
        )

    def start(self, timeout: float = 60.0) -> EmbeddedWorker:
        self.thread.start()
        if not self.controller.started.wait(timeout):
            raise RuntimeError("the embedded Celery worker did not start")
        logger.info("embedded Celery worker consuming from %s", app.conf.broker_url.split("@")[-1])
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self.controller.stop(in_sighandler=False, exitcode=0)
        self.thread.join(timeout)
