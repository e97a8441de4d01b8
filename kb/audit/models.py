"""The audit trail: one append-only, hash-chained record per security-relevant event.

Each record carries the hash of the one before it (`prev_hash`) and its own hash over its
content and that link (kb/audit/chain.py). Records are numbered without gaps by `seq`, taken
under a row lock on the single `AuditChainHead` row, so concurrent writers queue for the
moment it takes to insert one row. On PostgreSQL a trigger refuses UPDATE, DELETE and TRUNCATE
of the table (migration 0001); the only deletion it lets through is the retention purge
(kb/audit/purge.py), and only of records whose department's retention has passed and that are
not under legal hold. A database superuser can still bypass a trigger; that is what the
verifier (kb/audit/verify.py) and the signed checkpoints exported outside the database
(kb/audit/checkpoints.py) are for.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import models
from django.utils.translation import gettext_lazy as _

GENESIS_HASH = "0" * 64


class AuditRecord(models.Model):
    class Outcome(models.TextChoices):
        SUCCESS = "success", _("Success")
        FAILURE = "failure", _("Failure")
        DENIED = "denied", _("Denied")

    seq = models.BigIntegerField(primary_key=True)
    at = models.DateTimeField(db_index=True)  # UTC
    action = models.CharField(max_length=60, db_index=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.SUCCESS)
    # Who and where, copied at the time: users and departments may be renamed or deleted
    # later, the record must still say what was true then. No foreign keys for that reason.
    actor_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    actor = models.CharField(max_length=150, blank=True)
    department_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    department = models.CharField(max_length=120, blank=True)
    ip = models.CharField(max_length=45, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    target_type = models.CharField(max_length=40, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    # Documents the event exposed or changed, space-separated (" 12 15 "), so "who saw this
    # document" is one indexed lookup in AuditDocument and the hash covers the list.
    document_ids = models.TextField(blank=True)
    # Canonical JSON text (sorted keys): hashed exactly as stored, with no round trip through
    # a JSON column type that could normalise it.
    details_json = models.TextField(default="{}")
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["-seq"]
        indexes = [models.Index(fields=["action", "at"], name="audit_action_at")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} by {self.actor or '-'}"

    @property
    def details(self) -> dict[str, Any]:
        value = json.loads(self.details_json or "{}")
        return value if isinstance(value, dict) else {}

    @property
    def document_id_list(self) -> list[int]:
        return [int(part) for part in self.document_ids.split()]

    def as_export_dict(self) -> dict[str, Any]:
        """The record as SIEM exporters and `audit export` see it (kb/audit/siem.py)."""
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "action": self.action,
            "outcome": self.outcome,
            "actor_id": self.actor_id,
            "actor": self.actor,
            "department_id": self.department_id,
            "department": self.department,
            "ip": self.ip,
            "request_id": self.request_id,
            "target_type": self.target_type,
            "target_id": self.target_id,
            "document_ids": self.document_id_list,
            "details": self.details,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


class AuditDocument(models.Model):
    """Index of which records concern which document (derived from `document_ids`)."""

    record = models.ForeignKey(AuditRecord, on_delete=models.DO_NOTHING, related_name="+")
    document_id = models.BigIntegerField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["record", "document_id"], name="one_audit_doc_ref")
        ]

    def __str__(self) -> str:
        return f"#{self.record_id} -> document {self.document_id}"


class AuditChainHead(models.Model):
    """The single row holding the last record's number and hash: writers lock it to append,
    and the verifier compares it with the table to find records cut off the end."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64, default=GENESIS_HASH)

    def __str__(self) -> str:
        return f"head #{self.seq}"


class AuditPolicy(models.Model):
    """Company-wide retention for records that concern no department (sign-in failures of
    unknown names, say). Departments set their own (Department.audit_retention_days). Kept
    in the database rather than in settings because the purge trigger checks it too."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    retention_days = models.PositiveIntegerField(null=True, blank=True)
    legal_hold = models.BooleanField(default=False)

    def __str__(self) -> str:
        return "audit policy"


class SiemCursor(models.Model):
    """How far each configured SIEM receiver has been sent records (kb/audit/shipping.py)."""

    name = models.CharField(max_length=100, primary_key=True)
    last_seq = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} at #{self.last_seq}"
