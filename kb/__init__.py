"""The Django project: settings, URLs, and the apps that own the data."""

# First, before any library is imported: every process of the product (web, workers, beat,
# management commands) imports this package before anything else of its own, and from here
# on nothing reaches a host that is not a configured service (kb/ops/offline.py).
from kb.ops.offline import install_from_environment

install_from_environment()

from kb.celery import app as celery_app  # noqa: E402

__all__ = ["celery_app"]
