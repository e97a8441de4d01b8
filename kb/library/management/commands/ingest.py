"""Load a folder (or one file, or a zip) into a collection, with progress and a summary.

    manage.py ingest PATH --collection NAME [--department SLUG] [--create] [--no-wait]

Files keep their paths relative to PATH, so a file that changed since the last run becomes a
new version and an unchanged one adds nothing. In the embedded default the command runs a
worker itself, unless the portal is running and holds the index, in which case the portal's
worker does the work and this command only follows it. Exit status 2 if any file failed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from ingest.index import IndexLocked
from kb.accounts.models import Department
from kb.library.models import Collection, DocumentVersion
from kb.library.services import BatchResult, files_under, upload_any, upload_folder
from kb.worker import EmbeddedWorker

Status = DocumentVersion.Status


class Command(BaseCommand):
    help = "Ingest every file under PATH into a collection and report what happened."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--collection", required=True, help="Collection name.")
        parser.add_argument("--department", help="Department slug (needed if names repeat).")
        parser.add_argument(
            "--create", action="store_true", help="Create the collection if it does not exist."
        )
        parser.add_argument("--user", help="Record this username as the uploader.")
        parser.add_argument(
            "--no-wait", action="store_true", help="Queue the files and return at once."
        )
        parser.add_argument(
            "--timeout", type=float, default=0, help="Stop waiting after this many seconds."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        root: Path = options["path"].expanduser().resolve()
        if not root.exists():
            raise CommandError(f"{root} does not exist")
        collection = self._collection(options)
        uploader_id = self._uploader_id(options.get("user"))

        started = time.monotonic()
        batch = self._upload(root, collection, uploader_id)
        queued = [r.version.pk for r in batch.results if r.outcome != "duplicate"]
        self.stdout.write(
            f"{len(batch.results)} files accepted ({len(queued)} to ingest, "
            f"{batch.count('duplicate')} already present), {len(batch.refused)} refused."
        )
        worker = None
        if queued and not options["no_wait"]:
            worker = self._start_worker()
            try:
                self._follow(queued, options["timeout"])
            finally:
                if worker is not None:
                    worker.stop()
        self._summary(batch, queued, time.monotonic() - started, waited=not options["no_wait"])

    # --- steps ----------------------------------------------------------------------------

    def _collection(self, options: dict[str, Any]) -> Collection:
        name, slug = options["collection"], options.get("department")
        matches = Collection.objects.filter(name=name)
        if slug:
            matches = matches.filter(department__slug=slug)
        found = list(matches.select_related("department"))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            departments = ", ".join(c.department.slug for c in found)
            raise CommandError(
                f"{name!r} exists in several departments ({departments}): "
                "choose one with --department"
            )
        if not options["create"]:
            known = ", ".join(sorted(Collection.objects.values_list("name", flat=True))) or "none"
            raise CommandError(
                f"no collection {name!r} (known: {known}); add --create "
                "--department SLUG to create it"
            )
        if not slug:
            raise CommandError("--create needs --department SLUG")
        department = Department.objects.filter(slug=slug).first()
        if department is None:
            raise CommandError(f"no department with slug {slug!r}")
        self.stdout.write(f"Creating collection {name!r} in {department}.")
        return Collection.objects.create(name=name, department=department)

    def _uploader_id(self, username: str | None) -> int | None:
        if not username:
            return None
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user {username!r}")
        return int(user.pk)

    def _upload(self, root: Path, collection: Collection, uploader_id: int | None) -> BatchResult:
        if root.is_file():
            with root.open("rb") as stream:
                return upload_any(
                    collection=collection,
                    name=root.name,
                    stream=stream,
                    size=root.stat().st_size,
                    uploaded_by_id=uploader_id,
                )
        files = list(files_under(root))
        with tqdm(total=len(files), desc="Storing", unit="file", file=self.stderr) as bar:
            return upload_folder(
                collection=collection,
                root=root,
                uploaded_by_id=uploader_id,
                on_file=lambda _: bar.update(1),
            )

    def _start_worker(self) -> Any:
        """In the embedded default, work here unless the portal already holds the index."""
        if not settings.KB_EMBEDDED_WORKER:
            self.stdout.write("Waiting for the Celery workers.")
            return None

        try:
            return EmbeddedWorker().start()
        except IndexLocked:
            self.stdout.write("The running portal holds the index; its worker does the work.")
            return None

    def _follow(self, version_ids: list[int], timeout: float) -> None:
        deadline = time.monotonic() + timeout if timeout else None
        versions = DocumentVersion.objects.filter(pk__in=version_ids)
        with tqdm(total=len(version_ids), desc="Indexing", unit="doc", file=self.stderr) as bar:
            while True:
                done = versions.exclude(status__in=DocumentVersion.IN_PROGRESS).count()
                bar.update(done - bar.n)
                busy = versions.filter(status__in=[Status.PARSING, Status.EMBEDDING]).first()
                if busy is not None:
                    bar.set_postfix_str(f"{busy.original_name} {busy.progress}%", refresh=False)
                if done == len(version_ids):
                    return
                if deadline is not None and time.monotonic() > deadline:
                    self.stdout.write("Stopped waiting; the rest continues in the workers.")
                    return
                time.sleep(0.5)

    def _summary(
        self, batch: BatchResult, version_ids: list[int], seconds: float, waited: bool
    ) -> None:
        versions = list(
            DocumentVersion.objects.filter(pk__in=version_ids).select_related("document")
        )
        by_status: dict[str, list[DocumentVersion]] = {}
        for version in versions:
            by_status.setdefault(version.status, []).append(version)
        indexed = by_status.get(Status.INDEXED, [])
        chunks = sum(v.chunk_count for v in indexed)
        pages = sum(v.page_count or 0 for v in indexed)
        self.stdout.write(
            self.style.SUCCESS(
                f"Indexed {len(indexed)} documents ({chunks} passages, {pages} pages) in "
                f"{seconds:.1f} s; {batch.count('duplicate')} unchanged, "
                f"{batch.count('new_version')} new versions."
            )
        )
        problems = 0
        for status in (Status.FAILED, Status.QUARANTINED):
            for version in by_status.get(status, []):
                problems += 1
                where = f"{status}: {version.document.path}"
                self.stdout.write(
                    self.style.ERROR(f"  {where}: [{version.error_code}] {version.error}")
                )
        for path, reason in batch.refused:
            problems += 1
            self.stdout.write(self.style.ERROR(f"  refused: {path}: {reason}"))
        pending = sum(len(by_status.get(s, [])) for s in DocumentVersion.IN_PROGRESS)
        if pending:
            note = "still in progress" if waited else "queued"
            self.stdout.write(f"  {pending} documents {note}.")
        if problems:
            raise CommandError(
                f"{problems} files could not be ingested (listed above)", returncode=2
            )
