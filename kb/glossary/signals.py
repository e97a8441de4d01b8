"""Audit records for glossary changes, whichever way they are made (portal, CSV import,
admin site, shell): the same pattern as kb/audit/signals.py, one record per saved change with
the fields before and after."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save, pre_save

from kb.audit.trail import record
from kb.glossary.models import GlossaryEntry

AUDITED_FIELDS = ("term", "abbreviations", "synonyms", "term_zh", "term_en", "definition")


def _values(entry: GlossaryEntry) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in AUDITED_FIELDS}


def _remember_old(sender: type[GlossaryEntry], instance: GlossaryEntry, **kwargs: Any) -> None:
    if instance.pk is None or kwargs.get("raw"):
        return
    old = GlossaryEntry.objects.filter(pk=instance.pk).values(*AUDITED_FIELDS).first()
    instance._audit_old = old  # type: ignore[attr-defined]  # the state before the save, noted on the instance for post_save


def _saved(
    sender: type[GlossaryEntry], instance: GlossaryEntry, created: bool, **kwargs: Any
) -> None:
    if kwargs.get("raw"):
        return
    new = _values(instance)
    old = getattr(instance, "_audit_old", None)
    if created or old is None:
        changes = {name: [None, value] for name, value in new.items() if value}
        action = "glossary.created"
    else:
        changes = {
            name: [old[name], new[name]] for name in AUDITED_FIELDS if old[name] != new[name]
        }
        action = "glossary.changed"
        if not changes:
            return
    record(
        action,
        target=instance,
        department=instance.department_id,
        details={"changes": changes, "object": str(instance)[:200]},
    )


def _deleted(sender: type[GlossaryEntry], instance: GlossaryEntry, **kwargs: Any) -> None:
    record(
        "glossary.deleted",
        target=instance,
        department=instance.department_id,
        details={"before": _values(instance), "object": str(instance)[:200]},
    )


def connect() -> None:
    pre_save.connect(_remember_old, sender=GlossaryEntry, dispatch_uid="audit-pre-glossary")
    post_save.connect(_saved, sender=GlossaryEntry, dispatch_uid="audit-save-glossary")
    post_delete.connect(_deleted, sender=GlossaryEntry, dispatch_uid="audit-del-glossary")
