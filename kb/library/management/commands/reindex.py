"""Rebuild the vector index from the database, or check it against the database.

    manage.py reindex            build a new generation with EMBEDDING_MODEL and switch to it
    manage.py reindex --check    compare the served index with the database; exit 1 if off

The served generation keeps answering searches until the new one is complete and verified.
In the embedded default the index belongs to one process: if the portal is running, the
rebuild is handed to its worker instead.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from ingest.index import IndexLocked, MissingCollection
from kb.library.components import get_index
from kb.library.indexing import active_generation, rebuild_index, verify_generation
from kb.library.models import DocumentVersion
from kb.library.tasks import rebuild_index_task


class Command(BaseCommand):
    help = "Rebuild the vector index from the database (or --check it)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--check", action="store_true", help="Only compare; change nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["check"]:
                self._check()
            else:
                self._rebuild()
        except IndexLocked:
            if options["check"]:
                raise CommandError("the running portal holds the index; stop it to check") from None
            rebuild_index_task.delay()
            self.stdout.write("The running portal holds the index: its worker will rebuild it.")

    def _live_chunks(self) -> int:
        versions = DocumentVersion.objects.filter(index_state=DocumentVersion.IndexState.LIVE)
        return sum(versions.values_list("chunk_count", flat=True))

    def _check(self) -> None:
        generation = active_generation()
        try:
            wrong, stray = verify_generation(generation)
        except MissingCollection:
            raise CommandError(
                f"the served index collection {generation.collection_name} is missing: "
                "run `manage.py reindex`",
                returncode=1,
            ) from None
        points = get_index().count(generation.collection_name)
        self.stdout.write(
            f"{generation.collection_name} ({generation.model_id}): {points} points; "
            f"{self._live_chunks()} passages of current versions in the database."
        )
        if wrong or stray:
            raise CommandError(
                f"{len(wrong)} versions have missing or extra points, {len(stray)} versions "
                "have points but are not current: run `manage.py reindex`",
                returncode=1,
            )
        self.stdout.write(self.style.SUCCESS("The index matches the database."))

    def _rebuild(self) -> None:
        expected = self._live_chunks()
        with tqdm(total=expected, desc="Embedding", unit="passage", file=self.stderr) as bar:
            generation = rebuild_index(progress=lambda done, total: bar.update(done - bar.n))
        points = get_index().count(generation.collection_name)
        self.stdout.write(
            self.style.SUCCESS(
                f"Now serving {generation.collection_name} ({generation.model_id}): "
                f"{points} points for {self._live_chunks()} passages."
            )
        )
