"""Workers for the end-to-end tests: real Celery, on the services the settings name."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from django.conf import settings

from kb.worker import EmbeddedWorker


def require_real_services() -> None:
    # `make test` sets KB_REQUIRE_SERVICES, so these tests cannot silently fall back to
    # SQLite or the filesystem broker.
    if os.environ.get("KB_REQUIRE_SERVICES"):
        assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
        assert settings.CELERY_BROKER_URL.startswith("redis://")


def start_embedded_worker(hostname: str = "e2e@localhost") -> EmbeddedWorker:
    require_real_services()
    return EmbeddedWorker(hostname=hostname).start()


@pytest.fixture
def celery_worker(fresh_index: None) -> Iterator[None]:
    worker = start_embedded_worker()
    yield
    worker.stop()
