"""Ingesting one document version, exactly once, and recovering work that a crash interrupted.

The steps, each safe to repeat:
1. claim: a conditional update moves the version from queued (or from a claim whose worker
   went quiet) to parsing and counts the attempt. A version claimed more than
   KB_MAX_INGEST_ATTEMPTS times without finishing killed its worker each time: quarantined.
2. parse in the sandbox (a child process with memory and time limits), then chunk.
3. store the chunks, mark the version's points hidden, embed with every live generation's
   model and write the points (deterministic ids, so a retry overwrites).
4. flip, in one transaction: the version becomes the document's current one and visible,
   the previous current version becomes hidden. Searches exclude hidden versions inside the
   query, so there is no moment where both versions or neither are found.
5. purge the replaced version's points and chunks after a grace period.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from ingest.chunking import chunk_elements
from ingest.errors import IngestError, NoTextFound
from ingest.parsing import ParsedDocument
from kb.library.components import get_embedder, get_parser, parse_options
from kb.library.encryption import plaintext_copy
from kb.library.events import announce_version_finished
from kb.library.indexing import (
    active_generation,
    chunk_texts,
    live_generations,
    remove_version_points,
    write_version,
)
from kb.library.models import Chunk, Document, DocumentVersion, IndexGeneration
from kb.library.queue import queue_purge
from kb.library.services import default_title, enqueue_version

logger = logging.getLogger(__name__)

Status = DocumentVersion.Status
IndexState = DocumentVersion.IndexState

# Progress milestones (percent) shown while a version moves through the pipeline.
_PARSING, _EMBEDDING, _WRITING = 5, 30, 90
# Tokens kept free in the model's input for the title and section path (embedding_text).
_CONTEXT_RESERVE = 32
_HEARTBEAT_EVERY = 2.0


class LostClaim(Exception):
    """Another worker took this version over (ours was considered dead); stop quietly."""


class TransientIngestError(Exception):
    """A dependency (database, index, broker) failed; the task retries with backoff."""


def node_prefix(node: str | None = None) -> str:
    """What every claim of a Celery node starts with (`celery@host:`)."""
    return f"{node or 'local@' + socket.gethostname()}:"


def worker_name(node: str | None = None) -> str:
    """`node:pid`, unique per process (prefork children share their node's name)."""
    return f"{node_prefix(node)}{os.getpid()}"


class _Claim:
    """The current worker's hold on a version; every write checks the hold is still ours."""

    def __init__(self, version: DocumentVersion, worker: str) -> None:
        self.version = version
        self.worker = worker
        self._last_beat = 0.0

    def update(self, force: bool = True, **fields: object) -> None:
        now = time.monotonic()
        if not force and now - self._last_beat < _HEARTBEAT_EVERY:
            return
        self._last_beat = now
        updated = DocumentVersion.objects.filter(pk=self.version.pk, claimed_by=self.worker).update(
            heartbeat_at=timezone.now(), **fields
        )
        if not updated:
            raise LostClaim(f"version {self.version.pk} is no longer claimed by {self.worker}")

    def heartbeat(self) -> None:
        self.update(force=False)


def claim_version(version_id: int, worker: str) -> DocumentVersion | None:
    """Take a version for processing, or None if it is gone, finished, or busy elsewhere."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.KB_INGEST_STALE_SECONDS)
    claimed = (
        DocumentVersion.objects.filter(pk=version_id)
        .filter(
            Q(status=Status.QUEUED)
            | Q(status__in=[Status.PARSING, Status.EMBEDDING], heartbeat_at__lt=stale)
        )
        .update(
            status=Status.PARSING,
            attempts=F("attempts") + 1,
            claimed_by=worker,
            heartbeat_at=now,
            started_at=now,
            finished_at=None,
            progress=_PARSING,
            error="",
            error_code="",
        )
    )
    if not claimed:
        return None
    version = DocumentVersion.objects.select_related("document__collection").get(pk=version_id)
    if version.attempts > settings.KB_MAX_INGEST_ATTEMPTS:
        _finish_failed(
            version,
            Status.QUARANTINED,
            "quarantined",
            f"{version.original_name!r} was being processed when its worker died "
            f"{version.attempts - 1} times; it is quarantined so it cannot take workers down "
            "again. Check the file, then retry it from the collection page.",
        )
        return None
    return version


def _finish_failed(version: DocumentVersion, status: str, code: str, message: str) -> None:
    now = timezone.now()
    DocumentVersion.objects.filter(pk=version.pk).update(
        status=status,
        error_code=code,
        error=message[:4000],
        claimed_by="",
        finished_at=now,
        hidden_at=now,
    )
    announce_version_finished(version.pk)  # e.g. webhooks: document.failed (never raises)
    logger.warning("version %s %s (%s): %s", version.pk, status, code, message)
    purge_version(version.pk)


def _parse(claim: _Claim) -> ParsedDocument:
    version = claim.version
    # The stored original is encrypted; the parser child reads a decrypted copy in a private
    # temporary directory that is removed as soon as it has answered.
    with plaintext_copy(version.original.name or "") as path:
        result = get_parser().run(
            {
                "path": str(path),
                "filename": version.original_name,
                "options": parse_options().to_json(),
            },
            description=repr(version.original_name),
            on_wait=claim.heartbeat,
            wait_every=_HEARTBEAT_EVERY,
        )
    return ParsedDocument.from_json(result)


def ingest_version(version_id: int, worker: str | None = None) -> str:
    """Run the whole pipeline for one version; return its final status (or "skipped")."""
    worker = worker or worker_name()
    version = claim_version(version_id, worker)
    if version is None:
        logger.info("version %s is gone, finished or busy elsewhere; nothing to do", version_id)
        return "skipped"
    claim = _Claim(version, worker)
    try:
        return _run(claim)
    except LostClaim as exc:
        logger.warning("%s", exc)
        return "skipped"
    except IngestError as exc:
        _finish_failed(version, Status.FAILED, exc.code, str(exc))
        return Status.FAILED
    except Exception as exc:
        # Not the file's fault (index or database trouble): give the version back to the
        # queue and let the task retry later.
        DocumentVersion.objects.filter(pk=version.pk, claimed_by=worker).update(
            status=Status.QUEUED,
            claimed_by="",
            error_code="retrying",
            error=f"{type(exc).__name__}: {exc}"[:4000],
        )
        raise TransientIngestError(f"version {version_id}: {type(exc).__name__}: {exc}") from exc


def _run(claim: _Claim) -> str:
    version = claim.version
    document = version.document
    started = time.monotonic()
    try:
        parsed = _parse(claim)
    except OSError as exc:
        raise NoTextFound(
            f"the stored file of {version.original_name!r} is unreadable: {exc}"
        ) from exc
    parse_seconds = time.monotonic() - started

    if parsed.title and document.title == default_title(document.path):
        # The document's own title (first heading, mail subject) names it better.
        Document.objects.filter(pk=document.pk).update(title=parsed.title[:300])
        document.title = parsed.title[:300]
    generation = active_generation()
    # Chunks are measured in the served model's tokens, so it never truncates one.
    active_embedder = get_embedder(generation.model_name)
    max_tokens = min(settings.CHUNK_MAX_TOKENS, active_embedder.max_tokens - _CONTEXT_RESERVE)
    drafts = chunk_elements(
        parsed.elements,
        max_tokens=max_tokens,
        overlap_tokens=min(settings.CHUNK_OVERLAP_TOKENS, max_tokens // 2),
        counter=active_embedder.count_tokens,
    )
    if not drafts:
        raise NoTextFound(f"{version.original_name!r} contains no extractable text")
    claim.update(
        status=Status.EMBEDDING,
        progress=_EMBEDDING,
        page_count=parsed.page_count,
        ocr_pages=len(parsed.ocr_pages),
        parse_seconds=parse_seconds,
    )

    with transaction.atomic():
        # Replace whatever a crashed attempt left; the points about to be written stay
        # hidden until the flip.
        Chunk.objects.filter(version=version).delete()
        Chunk.objects.bulk_create(
            [
                Chunk(
                    version=version,
                    document=document,
                    ordinal=draft.ordinal,
                    text=draft.text,
                    page=draft.page,
                    section_title=draft.section_title[:300],
                    section_path=draft.section[:1000],
                    kind=draft.kind,
                    tokens=draft.tokens,
                )
                for draft in drafts
            ]
        )
        claim.update(index_state=IndexState.HIDDEN, chunk_count=len(drafts))
    chunks = list(Chunk.objects.filter(version=version).order_by("ordinal"))

    embed_started = time.monotonic()
    generations = live_generations()
    texts = chunk_texts(version, chunks)
    models = sorted({g.model_name for g in generations})
    vectors_by_model: dict[str, list[list[float]]] = {}
    for position, model_name in enumerate(models):

        def progress(done: int, position: int = position) -> None:
            share = (position + done / len(texts)) / len(models)
            claim.update(force=False, progress=_EMBEDDING + int(share * (_WRITING - _EMBEDDING)))

        vectors_by_model[model_name] = get_embedder(model_name).embed_documents(texts, progress)
    embed_seconds = time.monotonic() - embed_started

    claim.update(progress=_WRITING)
    write_started = time.monotonic()
    write_version(version, chunks, vectors_by_model, generations)
    return _flip(claim, parse_seconds, embed_seconds, time.monotonic() - write_started, generation)


def _flip(
    claim: _Claim,
    parse_seconds: float,
    embed_seconds: float,
    index_seconds: float,
    generation: IndexGeneration,
) -> str:
    """Make the version current and the previous one hidden, in one transaction."""
    version_id = claim.version.pk
    with transaction.atomic():
        document = (
            Document.objects.select_for_update(of=("self",))
            .filter(pk=claim.version.document_id)
            .select_related("current_version")
            .first()
        )
        version = DocumentVersion.objects.select_for_update().filter(pk=version_id).first()
        if document is None or version is None:
            # Deleted while we worked: take our points back out.
            transaction.on_commit(lambda: remove_version_points(version_id))
            return "skipped"
        if version.claimed_by != claim.worker:
            raise LostClaim(f"version {version_id} was taken over before it could finish")
        previous = document.current_version
        replaced: DocumentVersion | None
        if previous is None or previous.number < version.number:
            document.current_version = version
            document.save(update_fields=["current_version", "updated_at"])
            final_status, final_state, replaced = Status.INDEXED, IndexState.LIVE, previous
        else:
            # A newer version finished first; this one was outdated before it went live.
            final_status, final_state, replaced = Status.SUPERSEDED, IndexState.HIDDEN, version
        DocumentVersion.objects.filter(pk=version_id).update(
            status=final_status,
            index_state=final_state,
            progress=100,
            claimed_by="",
            finished_at=timezone.now(),
            parse_seconds=parse_seconds,
            embed_seconds=embed_seconds,
            index_seconds=index_seconds,
            embedding_model=generation.model_id,
        )
        if final_status == Status.INDEXED:
            announce_version_finished(version_id)  # e.g. webhooks: document.indexed
        if replaced is not None:
            DocumentVersion.objects.filter(pk=replaced.pk).update(
                status=Status.SUPERSEDED, index_state=IndexState.HIDDEN, hidden_at=timezone.now()
            )
    if replaced is not None:
        schedule_purge(replaced.pk)
    logger.info(
        "version %s %s: %d chunks (parse %.1fs, embed %.1fs, index %.1fs)",
        version_id,
        final_status,
        version.chunk_count,
        parse_seconds,
        embed_seconds,
        index_seconds,
    )
    return final_status


def schedule_purge(version_id: int) -> None:
    """Remove a replaced version's points after the grace period.

    A search that read the list of hidden versions just before the flip may still be on its
    way to the index; keeping the old points a little longer means it still finds the
    document. The recovery sweep purges anything this message misses.
    """
    try:
        queue_purge(version_id, countdown=settings.KB_PURGE_GRACE_SECONDS)
    except Exception:
        logger.exception("could not schedule the purge of version %s", version_id)


def purge_version(version_id: int) -> bool:
    """Delete the points and chunks of a version that is not current (any more)."""
    version = DocumentVersion.objects.filter(pk=version_id).first()
    if version is None or version.index_state == IndexState.LIVE or version.is_busy:
        return False
    remove_version_points(version_id)
    with transaction.atomic():
        Chunk.objects.filter(version_id=version_id).delete()
        DocumentVersion.objects.filter(pk=version_id).exclude(index_state=IndexState.LIVE).update(
            index_state=IndexState.NONE
        )
    return True


def recover_ingestion(
    worker_prefix: str | None = None, node_started: datetime | None = None
) -> dict[str, int]:
    """Put interrupted work back in line. Run at worker start and every minute.

    - claims held by a dead worker: claims of this node from before it (re)started (a Celery
      node name is unique), or any claim whose heartbeat is older than KB_INGEST_STALE_SECONDS;
    - versions whose task message never reached the broker, or was sent more than
      KB_INGEST_STALE_SECONDS ago and may have been lost with it;
    - replaced or failed versions whose hidden points are past the grace period.
    """
    now = timezone.now()
    dead = Q(heartbeat_at__lt=now - timedelta(seconds=settings.KB_INGEST_STALE_SECONDS))
    if worker_prefix:
        dead |= Q(claimed_by__startswith=worker_prefix, heartbeat_at__lt=node_started or now)
    stalled = list(
        DocumentVersion.objects.filter(status__in=[Status.PARSING, Status.EMBEDDING])
        .filter(dead)
        .values_list("pk", flat=True)
    )
    for version_id in stalled:
        requeued = DocumentVersion.objects.filter(
            pk=version_id, status__in=[Status.PARSING, Status.EMBEDDING]
        ).update(status=Status.QUEUED, claimed_by="")
        if requeued:
            logger.warning("version %s was interrupted; queued again", version_id)
            enqueue_version(version_id)
    unsent = list(
        DocumentVersion.objects.filter(
            status=Status.QUEUED,
            enqueued_at__isnull=True,
            created_at__lt=now - timedelta(seconds=10),
        ).values_list("pk", flat=True)
    )
    for version_id in unsent:
        enqueue_version(version_id)
    # Sent, yet still queued long after: the message may have died with the broker (a Redis
    # restarted without its append-only file loses its queue; bench/drills.py showed such
    # uploads stuck in "queued"). Sending again is safe: the claim lets only one task work,
    # and a duplicate that finds the version taken or done does nothing.
    lost = list(
        DocumentVersion.objects.filter(
            status=Status.QUEUED,
            enqueued_at__lt=now - timedelta(seconds=settings.KB_INGEST_STALE_SECONDS),
        ).values_list("pk", flat=True)
    )
    for version_id in lost:
        enqueue_version(version_id)
    grace = now - timedelta(seconds=settings.KB_PURGE_GRACE_SECONDS)
    leftovers = list(
        DocumentVersion.objects.filter(
            index_state=IndexState.HIDDEN,
            status__in=[Status.SUPERSEDED, Status.FAILED, Status.QUARANTINED],
        )
        .filter(Q(hidden_at__lt=grace) | Q(hidden_at__isnull=True))
        .values_list("pk", flat=True)
    )
    purged = sum(purge_version(version_id) for version_id in leftovers)
    return {"requeued": len(stalled), "resent": len(unsent) + len(lost), "purged": purged}
