"""Encryption at rest: which master key protects what, and key rotation.

    manage.py encryption status    chunk texts and stored originals per key id (and plain);
                                   exit 1 if anything is not under the current key
    manage.py encryption rotate    re-encrypt everything under KB_MASTER_KEY, reading with
                                   KB_MASTER_KEYS_PREVIOUS; the portal and workers keep running

Rotation: set the new key as KB_MASTER_KEY and the old one in KB_MASTER_KEYS_PREVIOUS
everywhere (web, workers), restart them, run `rotate`, check `status`, then remove the old key.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kb.audit import context
from kb.library.encryption import DecryptionError
from kb.library.rotation import encryption_status, rotate_keys


class Command(BaseCommand):
    help = "Encryption at rest: `status` (items per master key id) or `rotate` (re-encrypt)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["status", "rotate"])

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "rotate":
            self._rotate()
        else:
            self._status()

    def _status(self) -> None:
        usage = encryption_status()
        self.stdout.write(f"current key id: {usage.current_key_id}")
        for kind, counts in (
            ("chunk texts", usage.chunks),
            ("conversation and feedback texts", usage.texts),
            ("stored files", usage.files),
        ):
            self.stdout.write(f"{kind}:")
            if not counts:
                self.stdout.write("  none")
            for key_id, count in sorted(counts.items()):
                marker = " (current)" if key_id == usage.current_key_id else ""
                self.stdout.write(f"  {key_id}{marker}: {count}")
        if not usage.all_current:
            raise CommandError(
                "not everything is under the current key: run `manage.py encryption rotate`",
                returncode=1,
            )
        self.stdout.write(self.style.SUCCESS("Everything is encrypted under the current key."))

    def _rotate(self) -> None:
        with context.acting(context.command_operator()):
            try:
                result = rotate_keys(say=self.stdout.write)
            except DecryptionError as exc:
                raise CommandError(str(exc), returncode=1) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Re-encrypted {result.chunks} chunk texts, {result.texts} conversation and "
                f"feedback texts and {result.files} stored files "
                f"under key id {result.key_id}."
            )
        )
        if result.missing_files:
            raise CommandError(
                f"{len(result.missing_files)} stored file(s) the database refers to are "
                f"missing, e.g. {result.missing_files[0]}",
                returncode=1,
            )
