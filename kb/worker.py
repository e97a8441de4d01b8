"""A real Celery worker inside the web process, for the embedded default.

The embedded index (Qdrant Edge) can be open in one process only, so the worker that writes
to it must share the web process. It consumes from the same broker a separate worker would,
through Celery's own WorkController, in a daemon thread with the `threads` pool (as
production workers run). Celery beat does not run here, so the recovery sweep that beat
schedules in production runs on a timer.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

from celery.worker import WorkController
from django.conf import settings
from django.db import close_old_connections

from kb.api.tasks import deliver_webhooks_task
from kb.audit.tasks import checkpoint, ship
from kb.celery import app
from kb.library.ingestion import recover_ingestion
from kb.library.tasks import on_worker_start

logger = logging.getLogger(__name__)

RECOVERY_INTERVAL_SECONDS = 60.0
RESTART_PAUSE_SECONDS = 5.0


class EmbeddedWorkController(WorkController):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.started = threading.Event()
        super().__init__(*args, **kwargs)

    def on_consumer_ready(self, consumer: object) -> None:
        self.started.set()


class EmbeddedWorker:
    def __init__(self, hostname: str | None = None) -> None:
        # A stable name: after a restart, claims held under it are known to be dead.
        self.hostname = hostname or f"embedded@{socket.gethostname()}"
        self.controller = self._new_controller()
        self.thread = threading.Thread(target=self._run, name="embedded-celery-worker", daemon=True)
        self._stopping = threading.Event()
        self._recovery = threading.Thread(
            target=self._recover_periodically, name="embedded-recovery", daemon=True
        )

    def _new_controller(self) -> EmbeddedWorkController:
        return EmbeddedWorkController(
            app=app,
            hostname=self.hostname,
            pool="threads",
            concurrency=settings.KB_INGEST_CONCURRENCY,
            ready_callback=None,
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
        )

    def _run(self) -> None:
        """Run the worker; start a new one whenever it stops on its own.

        A separate `celery worker` that hits an unrecoverable error exits and its supervisor
        (compose's restart policy) starts it again. Here nothing would: when Redis went away,
        kombu's cleanup of the lost connection raised (AttributeError on the closed
        connection's `hostname`), Celery logged "Unrecoverable error" and stopped the worker,
        and the web process went on accepting uploads that no one consumed (bench/drills.py,
        the redis drill). So the thread restarts it, after a pause, until `stop()`.
        """
        while True:
            self.controller.start()  # returns when the worker stops, for whatever reason
            if self._stopping.wait(RESTART_PAUSE_SECONDS):
                return
            logger.error("the embedded Celery worker stopped; starting it again")
            try:
                self.controller = self._new_controller()
            except Exception:
                logger.exception("could not create the embedded Celery worker; trying again")

    def start(self, timeout: float = 60.0) -> EmbeddedWorker:

        on_worker_start(self.hostname)
        self.thread.start()
        if not self.controller.started.wait(timeout):
            raise RuntimeError("the embedded Celery worker did not start")
        self._recovery.start()
        logger.info("embedded Celery worker consuming from %s", app.conf.broker_url.split("@")[-1])
        return self

    def _recover_periodically(self) -> None:

        # The same periodic work beat schedules in production: the ingestion sweep, the
        # signed audit checkpoint, SIEM forwarding and webhook retries (each a no-op when
        # nothing is due).
        while not self._stopping.wait(RECOVERY_INTERVAL_SECONDS):
            for work in (recover_ingestion, checkpoint, ship, deliver_webhooks_task):
                try:
                    work()
                except Exception:
                    logger.exception("periodic %s failed; trying again in a minute", work)
                finally:
                    close_old_connections()

    def stop(self, timeout: float = 30.0) -> None:
        self._stopping.set()
        self.controller.stop(in_sighandler=False, exitcode=0)
        self.thread.join(timeout)
