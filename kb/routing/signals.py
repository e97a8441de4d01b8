"""Audit records for every change to the routing policy, however it is made (admin site,
shell, migration of data): who changed which endpoint, from what to what. The API key's
value is never in a row, so never in a record; only the variable's name is."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save, pre_save

from kb.audit.trail import record
from kb.routing.models import ModelEndpoint

TRACKED = (
    "name",
    "base_url",
    "model",
    "api_key_env",
    "location",
    "max_classification",
    "enabled",
    "preference",
    "model_version",
)


def _values(instance: ModelEndpoint) -> dict[str, Any]:
    return {name: getattr(instance, name) for name in TRACKED}


def _remember_old(sender: type[ModelEndpoint], instance: ModelEndpoint, **kwargs: Any) -> None:
    if instance.pk is None or kwargs.get("raw"):
        return
    instance._audit_old = (  # type: ignore[attr-defined]  # the state before the save, noted on the instance for post_save
        ModelEndpoint.objects.filter(pk=instance.pk).values(*TRACKED).first()
    )


def _saved(
    sender: type[ModelEndpoint], instance: ModelEndpoint, created: bool, **kwargs: Any
) -> None:
    if kwargs.get("raw"):
        return
    new = _values(instance)
    old = getattr(instance, "_audit_old", None)
    if created or old is None:
        action, changes = "endpoint.created", {k: [None, v] for k, v in new.items()}
    else:
        action = "endpoint.changed"
        changes = {k: [old[k], new[k]] for k in TRACKED if old[k] != new[k]}
        if not changes:
            return
    record(action, target=instance, details={"changes": changes, "object": str(instance)[:200]})


def _deleted(sender: type[ModelEndpoint], instance: ModelEndpoint, **kwargs: Any) -> None:
    record(
        "endpoint.deleted",
        target=instance,
        details={"before": _values(instance), "object": str(instance)[:200]},
    )


def connect() -> None:
    pre_save.connect(_remember_old, sender=ModelEndpoint, dispatch_uid="routing-old")
    post_save.connect(_saved, sender=ModelEndpoint, dispatch_uid="routing-saved")
    post_delete.connect(_deleted, sender=ModelEndpoint, dispatch_uid="routing-deleted")
