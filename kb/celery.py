"""The Celery application. Tasks live in each app's tasks.py and take ids only."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kb.settings")

app = Celery("kb")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def queue_task(name: str, *args: object, countdown: float = 0) -> None:
    """Queue the task registered as `name`.

    By name, so a module that queues work need not import the task module that calls back
    into it. A process that is not a worker (the portal, a command) has not imported the task
    modules yet: Celery's autodiscovery imports them here once, so the signature resolves to
    the registered task and eager mode and routing apply as for `task.delay`."""
    if name not in app.tasks:
        app.loader.import_default_modules()
    signature = app.signature(name, args=args)
    if countdown:
        signature.apply_async(countdown=countdown)
    else:
        signature.apply_async()
