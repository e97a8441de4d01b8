"""Writing the audit trail: `record()` is the one way a record is made.

A record commits or rolls back with the transaction it is written in, so the trail never
claims an action that did not happen. Writers take a row lock on the chain head for the time
it takes to insert one row; that is what makes the numbering gapless and the chain a single
line under any number of concurrent writers (PostgreSQL; SQLite serialises writers anyway).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC
from typing import Any

from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext_noop

from kb.accounts.models import Department, Membership
from kb.audit import context
from kb.audit.chain import canonical_json, record_hash
from kb.audit.checkpoints import anchor_after_commit
from kb.audit.models import AuditChainHead, AuditDocument, AuditRecord

logger = logging.getLogger("kb.audit")

# Sign-in, access decisions and changes to who may see what. Named here so the auditor
# pages can offer them as filters and so a misspelt action fails loudly in tests. The labels
# stay English here (gettext_noop only marks them for translation); the auditor pages show
# them in the reader's language (kb/audit/views.py, kb/audit/forms.py).
ACTIONS = {
    "auth.login": gettext_noop("Signed in"),
    "auth.login_failed": gettext_noop("Sign-in failed"),
    "auth.login_throttled": gettext_noop("Sign-in refused: too many failures"),
    "auth.logout": gettext_noop("Signed out"),
    "auth.session_ended": gettext_noop("Session ended (timeout or deactivated account)"),
    "question.asked": gettext_noop("Asked a question"),
    "search.performed": gettext_noop("Searched passages"),
    "llm.routed": gettext_noop("Routed a question to a language model"),
    "endpoint.created": gettext_noop("Added a model endpoint"),
    "endpoint.changed": gettext_noop("Changed a model endpoint"),
    "endpoint.deleted": gettext_noop("Deleted a model endpoint"),
    "document.uploaded": gettext_noop("Uploaded a document"),
    "upload.refused": gettext_noop("Upload refused (the file, or entries of an archive)"),
    "document.new_version": gettext_noop("Uploaded a new version"),
    "document.deleted": gettext_noop("Deleted a document"),
    "document.viewed": gettext_noop("Viewed a document"),
    "document.downloaded": gettext_noop("Downloaded an original"),
    "document.retried": gettext_noop("Retried a failed version"),
    "collection.created": gettext_noop("Created a collection"),
    "collection.changed": gettext_noop("Changed a collection"),
    "collection.deleted": gettext_noop("Deleted a collection"),
    "department.created": gettext_noop("Created a department"),
    "department.changed": gettext_noop("Changed a department"),
    "department.deleted": gettext_noop("Deleted a department"),
    "membership.added": gettext_noop("Added a membership"),
    "membership.changed": gettext_noop("Changed a membership"),
    "membership.removed": gettext_noop("Removed a membership"),
    "mapping.changed": gettext_noop("Changed a directory group mapping"),
    "user.changed": gettext_noop("Changed an account"),
    "token.created": gettext_noop("Created an API token"),
    "token.used": gettext_noop("Used an API token"),
    "token.revoked": gettext_noop("Revoked an API token"),
    "webhook.delivered": gettext_noop("Sent a document event to a webhook"),
    "conversation.read_other": gettext_noop("Read someone else's conversation"),
    "conversation.exported": gettext_noop("Exported a conversation"),
    "glossary.created": gettext_noop("Added a glossary entry"),
    "glossary.changed": gettext_noop("Changed a glossary entry"),
    "glossary.deleted": gettext_noop("Deleted a glossary entry"),
    "glossary.imported": gettext_noop("Imported a glossary (CSV)"),
    "glossary.exported": gettext_noop("Exported a glossary (CSV)"),
    "access.denied": gettext_noop("Access denied"),
    "audit.viewed": gettext_noop("Viewed the audit trail"),
    "audit.exported": gettext_noop("Exported audit records"),
    "audit.verified": gettext_noop("Verified the audit trail"),
    "audit.purged": gettext_noop("Purged audit records past retention"),
    "audit.checkpoint": gettext_noop("Signed an audit checkpoint"),
    "encryption.rotation_started": gettext_noop("Started re-encrypting under a new master key"),
    "encryption.rotated": gettext_noop("Re-encrypted stored data under the current master key"),
    "usage.soft_quota_reached": gettext_noop("A department passed its soft monthly quota"),
    "usage.hard_quota_reached": gettext_noop("A department reached its hard monthly quota"),
    "usage.quota_changed": gettext_noop("Changed a department's monthly quota"),
    "usage.viewed": gettext_noop("Viewed a usage report or the cost comparison"),
    "usage.exported": gettext_noop("Exported a usage report"),
}


def _department_of(actor: Any, department: Any) -> tuple[int | None, str]:

    if isinstance(department, Department):
        return department.pk, department.name
    if isinstance(department, int):
        name = Department.objects.filter(pk=department).values_list("name", flat=True).first()
        return department, name or ""
    if actor is not None and getattr(actor, "pk", None):
        # No department named by the event: the actor's own (their first, by membership id).
        first = (
            Membership.objects.filter(user_id=actor.pk)
            .select_related("department")
            .order_by("pk")
            .first()
        )
        if first is not None:
            return first.department_id, first.department.name
    return None, ""


def _target(target: Any) -> tuple[str, str]:
    if target is None:
        return "", ""
    if isinstance(target, tuple):
        kind, identifier = target
        return str(kind), str(identifier)
    if isinstance(target, models.Model):
        return target._meta.model_name or "", str(target.pk)
    raise TypeError(f"audit target must be a model instance or (type, id), not {target!r}")


def record(
    action: str,
    *,
    outcome: str = AuditRecord.Outcome.SUCCESS,
    actor: Any = None,
    actor_name: str = "",
    target: Any = None,
    department: Any = None,
    documents: Iterable[int] = (),
    details: dict[str, Any] | None = None,
) -> AuditRecord:
    """Append one record. Actor, IP and request id come from the current context
    (kb/audit/context.py) unless given; `actor_name` names someone who is not a user (the
    name typed into a failed sign-in)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    ctx = context.current()
    if actor is None:
        actor = ctx.user
    actor_id = getattr(actor, "pk", None) if actor is not None else None
    if actor is not None and not actor_name:
        actor_name = actor.get_username()
    if not actor_name and actor is None:
        # Not a person: a worker, a management command or a shell acting on its own.
        actor_name = ctx.name or {"worker": "system:worker", "system": "system"}.get(ctx.via, "")
    department_id, department_name = _department_of(actor, department)
    target_type, target_id = _target(target)
    document_list = sorted({int(d) for d in documents})
    fields: dict[str, Any] = {
        "at": timezone.now().astimezone(UTC),
        "action": action,
        "outcome": str(outcome),
        "actor_id": actor_id,
        "actor": actor_name[:150],
        "department_id": department_id,
        "department": department_name[:120],
        "ip": ctx.ip,
        "request_id": ctx.request_id,
        "target_type": target_type[:40],
        "target_id": target_id[:64],
        "document_ids": (" " + " ".join(map(str, document_list)) + " ") if document_list else "",
        "details_json": canonical_json({**(details or {}), "via": ctx.via}),
    }
    with transaction.atomic():
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(pk=1)
        seq = head.seq + 1
        entry = AuditRecord(
            seq=seq, prev_hash=head.hash, hash=record_hash(head.hash, fields), **fields
        )
        entry.save(force_insert=True)
        AuditChainHead.objects.filter(pk=1).update(seq=seq, hash=entry.hash)
        AuditDocument.objects.bulk_create(
            [AuditDocument(record=entry, document_id=d) for d in document_list]
        )
        # Anchor the new tail outside the database the moment it is committed: once per
        # transaction, however many records it writes.
        if not any(
            callback is anchor_after_commit
            for _, callback, _ in transaction.get_connection().run_on_commit
        ):
            transaction.on_commit(anchor_after_commit)
    return entry


def denied(
    target: Any,
    *,
    reason: str,
    department: Any = None,
    documents: Iterable[int] = (),
    **details: Any,
) -> AuditRecord:
    """An `access.denied` record: someone asked for something they may not have."""
    return record(
        "access.denied",
        outcome=AuditRecord.Outcome.DENIED,
        target=target,
        department=department,
        documents=documents,
        details={"reason": reason, **details},
    )
