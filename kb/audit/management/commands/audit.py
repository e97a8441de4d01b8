"""`manage.py audit verify|checkpoint|export|ship|purge`: the audit trail from the shell.

  verify               check the chain and the signed checkpoints; exit status 1 on any problem
  checkpoint           sign the current head and append it to AUDIT_CHECKPOINT_DIR
  export               write records as JSON lines or CEF (to stdout or --output), filtered
  ship                 send what the configured syslog receiver has not had yet
  purge [--confirm]    remove records past retention (a dry run without --confirm)
Each is itself recorded in the trail (export, verify, purge) with the operator's OS user.
"""

from __future__ import annotations

import sys
from argparse import ArgumentParser
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from kb.audit import context
from kb.audit.checkpoints import (
    CheckpointSignatureError,
    checkpoint_dir,
    read_checkpoints,
    write_checkpoint,
)
from kb.audit.models import AuditRecord
from kb.audit.purge import due_for_purge, purge
from kb.audit.shipping import ship_pending
from kb.audit.siem import to_cef, to_json_line, to_syslog
from kb.audit.trail import record
from kb.audit.verify import verify


def _date(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"not an ISO date or time: {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = "Verify, checkpoint, export, ship or purge the audit trail."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True)
        sub.add_parser("verify", help="check the hash chain and the signed checkpoints")
        sub.add_parser("checkpoint", help="sign the chain's head into AUDIT_CHECKPOINT_DIR")
        export = sub.add_parser("export", help="records as JSON lines or CEF")
        export.add_argument("--format", choices=["jsonl", "cef", "syslog"], default="jsonl")
        export.add_argument("--since", type=_date, help="from this UTC time (ISO 8601)")
        export.add_argument("--until", type=_date, help="up to this UTC time (ISO 8601)")
        export.add_argument("--after-seq", type=int, default=0)
        export.add_argument("--action")
        export.add_argument("--output", help="a file to write (default: standard output)")
        sub.add_parser("ship", help="send pending records to the configured syslog receiver")
        purge = sub.add_parser("purge", help="remove records past retention")
        purge.add_argument("--confirm", action="store_true", help="really delete")

    def handle(self, *args: Any, **options: Any) -> None:
        with context.acting(context.command_operator()):
            getattr(self, f"_{options['subcommand']}")(options)

    def _verify(self, options: dict[str, Any]) -> None:

        try:
            checkpoints = read_checkpoints()
        except CheckpointSignatureError as exc:
            record("audit.verified", outcome="failure", details={"error": str(exc)})
            raise CommandError(f"checkpoint file: {exc}") from exc
        report = verify(checkpoints)
        for problem in report.problems:
            self.stdout.write(f"{problem.kind:>10}  #{problem.seq}  {problem.message}")
        record(
            "audit.verified",
            outcome="success" if report.ok else "failure",
            details={"ok": report.ok, "problems": len(report.problems), "records": report.records},
        )
        if not report.ok:
            raise CommandError(report.summary())
        self.stdout.write(self.style.SUCCESS(report.summary()))

    def _checkpoint(self, options: dict[str, Any]) -> None:

        written = write_checkpoint()
        if written is None:
            self.stdout.write("Nothing new since the last checkpoint.")
        else:
            self.stdout.write(f"Signed #{written.seq} into {checkpoint_dir()}")

    def _export(self, options: dict[str, Any]) -> None:
        import socket

        records = AuditRecord.objects.filter(seq__gt=options["after_seq"]).order_by("seq")
        if options["since"]:
            records = records.filter(at__gte=options["since"])
        if options["until"]:
            records = records.filter(at__lte=options["until"])
        if options["action"]:
            records = records.filter(action=options["action"])
        hostname = socket.gethostname()

        def syslog(entry: dict[str, Any]) -> str:
            return to_syslog(entry, hostname=hostname)

        formats: dict[str, Callable[[dict[str, Any]], str]] = {
            "jsonl": to_json_line,
            "cef": to_cef,
            "syslog": syslog,
        }
        render = formats[options["format"]]
        out = open(options["output"], "w", encoding="utf-8") if options["output"] else sys.stdout  # noqa: SIM115
        count = 0
        try:
            for entry in records.iterator(chunk_size=2000):
                out.write(render(entry.as_export_dict()) + "\n")
                count += 1
        finally:
            if out is not sys.stdout:
                out.close()
        record(
            "audit.exported",
            details={
                "format": options["format"],
                "count": count,
                "filters": {
                    k: str(options[k])
                    for k in ("since", "until", "after_seq", "action")
                    if options[k]
                },
            },
        )
        self.stderr.write(f"Exported {count} records.")

    def _ship(self, options: dict[str, Any]) -> None:
        from django.conf import settings

        if not settings.AUDIT_SYSLOG_HOST:
            raise CommandError("AUDIT_SYSLOG_HOST is not set: there is no receiver to ship to")
        self.stdout.write(f"Shipped {ship_pending()} records.")

    def _purge(self, options: dict[str, Any]) -> None:

        plan = due_for_purge()
        if not plan.seqs:
            self.stdout.write("Nothing is past its retention period.")
            return
        for department, count in sorted(plan.by_department.items()):
            self.stdout.write(f"{count:>8}  {department}")
        if not options["confirm"]:
            self.stdout.write(
                f"{len(plan.seqs)} records are due. Run with --confirm to remove them."
            )
            return
        self.stdout.write(self.style.SUCCESS(f"Removed {purge()} records."))
