"""The Django project: settings, URLs, and the apps that own the data."""

from kb.celery import app as celery_app

__all__ = ["celery_app"]
