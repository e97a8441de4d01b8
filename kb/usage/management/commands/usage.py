"""`manage.py usage report --month YYYY-MM [--department SLUG] [--format csv|json]`.

The monthly report per department from the usage meter, as the portal's CSV has it: one row
per department, then one per user and one per API token under it. Recorded in the audit
trail (`usage.exported`) with the operator's OS user.
"""

from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from kb.accounts.models import Department
from kb.audit import context
from kb.audit.trail import record
from kb.usage.months import current_month, parse_month
from kb.usage.report import department_report, report_rows, to_csv


class Command(BaseCommand):
    help = "Usage reports: tokens, GPU-seconds and answers per department, user and API token."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True)
        report = sub.add_parser("report", help="the monthly report per department")
        report.add_argument("--month", help="YYYY-MM (default: the current month)")
        report.add_argument("--department", help="a department's slug (default: all)")
        report.add_argument("--format", choices=["csv", "json"], default="csv")

    def handle(self, *args: Any, **options: Any) -> None:
        with context.acting(context.command_operator()):
            self._report(options)

    def _report(self, options: dict[str, Any]) -> None:
        try:
            month = parse_month(options["month"]) if options["month"] else current_month()
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        departments = Department.objects.order_by("name")
        if options["department"]:
            departments = departments.filter(slug=options["department"])
            if not departments.exists():
                raise CommandError(f"no department with the slug {options['department']!r}")
        reports = [department_report(department, month) for department in departments]
        rows = report_rows(reports)
        record(
            "usage.exported",
            target=("usage", "report"),
            department=reports[0].department if len(reports) == 1 else None,
            details={
                "month": month.label,
                "departments": [r.department.slug for r in reports],
                "format": options["format"],
            },
        )
        if options["format"] == "json":
            self.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2))
        else:
            self.stdout.write(to_csv(rows), ending="")
