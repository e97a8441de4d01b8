"""`manage.py backup DEST`: snapshot the whole installation into one directory (or DEST.tar).

Database (pg_dump --format=custom, or SQLite's backup API), the stored originals it refers
to, the vector index collections, the signed audit checkpoints and their public key (never
the private signing key), with a manifest of every file's SHA-256. See kb/ops/backup.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kb.ops.backup import BackupError, backup


class Command(BaseCommand):
    help = "Back up the database, stored files, vector index and audit checkpoints."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "dest", help="a new (or empty) directory, or a file name ending in .tar"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        dest = Path(options["dest"]).resolve()
        try:
            result = backup(dest, say=self.stdout.write)
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        manifest = result.manifest
        counts = manifest["counts"]
        index = manifest["index"]
        collections = index.get("collections") or {}
        index_text = (
            ", ".join(f"{name} ({info['points']} points)" for name, info in collections.items())
            if index.get("kind")
            else "not included (restore will rebuild it)"
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Backup written to {result.path}:\n"
                f"  database: {manifest['database']['vendor']}, {counts['documents']} documents, "
                f"{counts['chunks']} passages, {counts['audit_records']} audit records\n"
                f"  stored files: {counts['stored_files']}\n"
                f"  index: {index_text}\n"
                f"  audit checkpoints: {manifest['audit']['checkpoints']}\n"
                f"  {counts['files']} files listed with SHA-256 in manifest.json"
            )
        )
