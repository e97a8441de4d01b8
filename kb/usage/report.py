"""The monthly report per department, from the meter (kb/usage/models.py) alone.

Questions are the meter's answer rows; tokens count every model call (answers and
follow-up rewrites, on-premises and external endpoints); GPU-seconds only on-premises calls.
The same numbers feed the portal page, its CSV and `manage.py usage report`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum

from kb.accounts.models import Department
from kb.usage.models import UsageRecord
from kb.usage.months import Month
from kb.usage.quota import QuotaState, quota_state

_ANSWER = Q(kind=UsageRecord.Kind.ANSWER)
_AGGREGATES: dict[str, Any] = {
    "questions": Count("id", filter=_ANSWER),
    "generated": Count("id", filter=_ANSWER & Q(mode="generated")),
    "extractive": Count("id", filter=_ANSWER & Q(mode="extractive")),
    "not_found": Count("id", filter=_ANSWER & Q(mode="not_found")),
    "prompt_tokens": Sum("prompt_tokens"),
    "completion_tokens": Sum("completion_tokens"),
    "gpu_seconds": Sum("gpu_seconds"),
}


@dataclass
class Totals:
    name: str = ""
    questions: int = 0
    generated: int = 0
    extractive: int = 0
    not_found: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    gpu_seconds: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def of(cls, row: Mapping[str, Any], name: str = "") -> Totals:
        return cls(
            name=name,
            questions=int(row.get("questions") or 0),
            generated=int(row.get("generated") or 0),
            extractive=int(row.get("extractive") or 0),
            not_found=int(row.get("not_found") or 0),
            prompt_tokens=int(row.get("prompt_tokens") or 0),
            completion_tokens=int(row.get("completion_tokens") or 0),
            gpu_seconds=float(row.get("gpu_seconds") or 0.0),
        )


@dataclass
class DepartmentReport:
    department: Department
    month: Month
    totals: Totals
    quota: QuotaState
    users: list[Totals] = field(default_factory=list)
    tokens: list[Totals] = field(default_factory=list)


def records_in(month: Month) -> QuerySet[UsageRecord]:
    return UsageRecord.objects.filter(created_at__gte=month.start, created_at__lt=month.end)


def department_report(department: Department, month: Month) -> DepartmentReport:
    rows = records_in(month).filter(department=department)
    users = [
        Totals.of(row, row["user_name"] or "—")
        for row in rows.values("user_name").annotate(**_AGGREGATES).order_by("user_name")
    ]
    tokens = [
        Totals.of(row, row["api_token_prefix"])
        for row in rows.exclude(api_token_prefix="")
        .values("api_token_prefix")
        .annotate(**_AGGREGATES)
        .order_by("api_token_prefix")
    ]
    return DepartmentReport(
        department=department,
        month=month,
        totals=Totals.of(rows.aggregate(**_AGGREGATES), department.name),
        quota=quota_state(department.pk, month),
        users=users,
        tokens=tokens,
    )


def overview(departments: Iterable[Department], month: Month) -> list[DepartmentReport]:
    """Every department's totals for the month (no per-user breakdown)."""
    chosen = list(departments)
    grouped = {
        row["department_id"]: row
        for row in records_in(month)
        .filter(department__in=chosen)
        .values("department_id")
        .annotate(**_AGGREGATES)
        .order_by()
    }
    return [
        DepartmentReport(
            department=department,
            month=month,
            totals=Totals.of(grouped.get(department.pk, {}), department.name),
            quota=quota_state(department.pk, month),
        )
        for department in chosen
    ]


FIELDS = [
    "month",
    "department",
    "scope",
    "name",
    "questions",
    "generated",
    "extractive",
    "not_found",
    "prompt_tokens",
    "completion_tokens",
    "gpu_seconds",
    "soft_limit_tokens",
    "hard_limit_tokens",
    "quota_state",
]


def report_rows(reports: Iterable[DepartmentReport]) -> list[dict[str, Any]]:
    """Flat rows: one per department, then one per user and one per API token under it."""
    rows: list[dict[str, Any]] = []
    for report in reports:
        common = {"month": report.month.label, "department": report.department.slug}
        quota = {
            "soft_limit_tokens": report.quota.soft_limit,
            "hard_limit_tokens": report.quota.hard_limit,
            "quota_state": report.quota.level or "ok",
        }
        for scope, items in (
            ("department", [report.totals]),
            ("user", report.users),
            ("token", report.tokens),
        ):
            for item in items:
                values = asdict(item)
                values["gpu_seconds"] = round(item.gpu_seconds, 3)
                rows.append(
                    {
                        **common,
                        "scope": scope,
                        **values,
                        **(quota if scope == "department" else dict.fromkeys(quota, "")),
                    }
                )
    return rows


def to_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        # A name starting with =, +, - or @ is data, not a spreadsheet formula.
        name = str(row.get("name", ""))
        writer.writerow({**row, "name": "'" + name if name[:1] in "=+-@" and name else name})
    return out.getvalue()
