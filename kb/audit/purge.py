"""Removing audit records past their retention: the one deletion the trail allows.

Documented procedure (also in the README): `manage.py audit purge` (dry run) lists what is
due; `manage.py audit purge --confirm` removes it. Due means: older than the retention of the
department the record concerns (Department.audit_retention_days), or of the company policy
for records without a department (AuditPolicy), with no legal hold on either. The purge
first appends an `audit.purged` record listing every removed record's number and hash, in
the same transaction as the deletion, so the verifier can still check the chain across the
hole, and the purge itself is on the trail. On PostgreSQL the append-only trigger checks the
same rule again for each row, so no code path can remove a record that is not due.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from kb.accounts.models import Department
from kb.audit.models import AuditDocument, AuditPolicy, AuditRecord
from kb.audit.trail import record


@dataclass(frozen=True)
class PurgePlan:
    seqs: list[int]
    by_department: dict[str, int]


def due_for_purge() -> PurgePlan:
    now = timezone.now()
    rule = Q(pk__in=[])
    labels: dict[str, Q] = {}
    for department in Department.objects.filter(
        audit_retention_days__isnull=False, legal_hold=False
    ):
        cutoff = now - timedelta(days=department.audit_retention_days or 0)
        labels[department.name] = Q(department_id=department.pk, at__lt=cutoff)
    policy = AuditPolicy.objects.filter(pk=1).first()
    if policy is not None and policy.retention_days is not None and not policy.legal_hold:
        cutoff = now - timedelta(days=policy.retention_days)
        known = Department.objects.values_list("pk", flat=True)
        labels["(no department)"] = Q(at__lt=cutoff) & (
            Q(department_id__isnull=True) | ~Q(department_id__in=known)
        )
    counts: dict[str, int] = {}
    for label, condition in labels.items():
        rule |= condition
        counts[label] = AuditRecord.objects.filter(condition).exclude(action="audit.purged").count()
    # Purge records are never purged: they carry the manifests that keep the chain checkable.
    seqs = list(
        AuditRecord.objects.filter(rule)
        .exclude(action="audit.purged")
        .order_by("seq")
        .values_list("seq", flat=True)
    )
    return PurgePlan(seqs=seqs, by_department={k: v for k, v in counts.items() if v})


def purge(batch: int = 5000) -> int:
    """Remove everything due, in batches of `batch` records; returns how many were removed."""
    removed = 0
    plan = due_for_purge()
    for start in range(0, len(plan.seqs), batch):
        seqs = plan.seqs[start : start + batch]
        with transaction.atomic():
            rows = list(
                AuditRecord.objects.filter(seq__in=seqs)
                .order_by("seq")
                .values_list("seq", "hash", "department")
            )
            record(
                "audit.purged",
                details={
                    "removed": [[seq, digest] for seq, digest, _ in rows],
                    "count": len(rows),
                    "departments": sorted({name for _, _, name in rows if name}),
                },
            )
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL kb.audit_purge = 'on'")
            AuditDocument.objects.filter(record_id__in=seqs).delete()
            AuditRecord.objects.filter(seq__in=seqs).delete()
        removed += len(rows)
    return removed
