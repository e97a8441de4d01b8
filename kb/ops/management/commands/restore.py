"""`manage.py restore SOURCE [--force]`: restore a `manage.py backup` into an empty
installation, then verify the audit trail and the index against the database.

Refuses a backup whose files do not match their SHA-256 in the manifest, and a target that
already holds documents or audit records unless --force. Exit status 1 when a check after
the restore fails. See kb/ops/backup.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kb.ops.backup import BackupError, restore


class Command(BaseCommand):
    help = "Restore a backup (directory or .tar) into an empty installation."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("source", help="a backup directory or .tar made by `backup`")
        parser.add_argument(
            "--force",
            action="store_true",
            help="replace an installation that already holds documents or audit records",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = restore(
                Path(options["source"]).resolve(), force=options["force"], say=self.stdout.write
            )
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Audit trail: {result.audit_summary}")
        self.stdout.write(
            f"Index ({result.index_source}): {result.index_points} points for "
            f"{result.live_chunks} passages of current versions: "
            + ("match" if result.index_ok else "MISMATCH")
        )
        for warning in result.warnings:
            self.stderr.write(self.style.WARNING(f"WARNING: {warning}"))
        if not result.ok:
            raise CommandError("the restore finished, but a check failed (see above)")
        self.stdout.write(self.style.SUCCESS("Restore complete."))
