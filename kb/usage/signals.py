"""A quota change is an audit record, whichever way it is made (admin site, portal, shell)."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save

from kb.audit.trail import record
from kb.usage.models import DepartmentQuota


def _quota_changed(sender: Any, instance: DepartmentQuota, **kwargs: Any) -> None:
    deleted = "created" not in kwargs  # post_delete sends no `created`
    record(
        "usage.quota_changed",
        target=("department", instance.department_id),
        department=instance.department_id,
        details={
            "soft_limit_tokens": None if deleted else instance.soft_limit_tokens,
            "hard_limit_tokens": None if deleted else instance.hard_limit_tokens,
            "removed": deleted,
        },
    )


def connect() -> None:
    post_save.connect(_quota_changed, sender=DepartmentQuota, dispatch_uid="usage_quota_saved")
    post_delete.connect(_quota_changed, sender=DepartmentQuota, dispatch_uid="usage_quota_deleted")
