"""Actions on collections and documents. Views and tasks call these; they hold the rules."""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from django.conf import settings
from django.core.files import File
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from ingest.chunking import chunk_elements
from ingest.index import IndexPoint
from ingest.parsing import ParseError, check_supported, parse_file
from kb.library.components import get_embedder, get_index
from kb.library.models import Chunk, Collection, Document

logger = logging.getLogger(__name__)


class UploadRejected(Exception):
    """The upload was refused; the message is shown to the uploader as is."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class UploadResult:
    document: Document
    created: bool


def _sha256(stream: IO[bytes]) -> str:
    digest = hashlib.sha256()
    stream.seek(0)
    for block in iter(lambda: stream.read(1024 * 1024), b""):
        digest.update(block)
    stream.seek(0)
    return digest.hexdigest()


def upload_document(
    *, collection: Collection, name: str, stream: IO[bytes], size: int, uploaded_by_id: int | None
) -> UploadResult:
    """Store an original and queue its ingestion. The same bytes twice add nothing."""
    from kb.library.tasks import ingest_document_task

    try:
        check_supported(name)
    except ParseError as exc:
        raise UploadRejected(str(exc), status=415) from exc
    if size > settings.KB_MAX_UPLOAD_BYTES:
        raise UploadRejected(
            f"{name!r} is {size // (1024 * 1024)} MB; the limit is "
            f"{settings.KB_MAX_UPLOAD_BYTES // (1024 * 1024)} MB",
            status=413,
        )
    if size == 0:
        raise UploadRejected(f"{name!r} is empty")
    digest = _sha256(stream)
    existing = Document.objects.filter(collection=collection, sha256=digest).first()
    if existing is not None:
        return UploadResult(existing, created=False)
    title = default_title(name)
    try:
        with transaction.atomic():
            document = Document(
                collection=collection,
                title=title,
                original_name=Path(name).name[:300],
                size_bytes=size,
                sha256=digest,
                uploaded_by_id=uploaded_by_id,
            )
            document.original.save(name, File(stream), save=False)
            document.save()
            # Queue only once the row is committed, or the worker may look for it too early.
            doc_id = document.pk
            transaction.on_commit(lambda: ingest_document_task.delay(doc_id))
    except IntegrityError:
        # A concurrent upload of the same bytes won the race; theirs is the document.
        return UploadResult(Document.objects.get(collection=collection, sha256=digest), False)
    return UploadResult(document, created=True)


def default_title(name: str) -> str:
    return (Path(name).stem.replace("_", " ").strip() or name)[:300]


def _claim(document_id: int) -> Document | None:
    """Mark the document as being parsed, unless it is gone or already indexed.

    A conditional update, so a redelivered task for a finished document does nothing.
    """
    claimed = (
        Document.objects.filter(pk=document_id)
        .exclude(status=Document.Status.INDEXED)
        .update(status=Document.Status.PARSING, attempts=F("attempts") + 1, error="")
    )
    if not claimed:
        return None
    return Document.objects.select_related("collection").get(pk=document_id)


def _set_status(document_id: int, status: str, **fields: object) -> None:
    Document.objects.filter(pk=document_id).update(status=status, **fields)


def ingest_document(document_id: int) -> str:
    """Parse, chunk, embed and index one document. Safe to run twice.

    Chunk rows and index points are replaced wholesale with deterministic ids, so a retry
    after a crash overwrites instead of duplicating. Returns the final status.
    """
    document = _claim(document_id)
    if document is None:
        logger.info("document %s is gone or already indexed; nothing to do", document_id)
        return "skipped"
    started = time.monotonic()
    try:
        elements = parse_file(Path(document.original.path), document.original_name)
    except ParseError as exc:
        _set_status(document_id, Document.Status.FAILED, error=str(exc)[:2000])
        logger.warning("document %s failed to parse: %s", document_id, exc)
        return Document.Status.FAILED
    except OSError as exc:
        _set_status(document_id, Document.Status.FAILED, error=f"stored file unreadable: {exc}")
        return Document.Status.FAILED

    drafts = chunk_elements(elements, settings.CHUNK_MAX_WORDS, settings.CHUNK_OVERLAP_WORDS)
    title_fields: dict[str, object] = {}
    if elements[0].category == "Title" and document.title == default_title(document.original_name):
        # A document's own first heading names it better than its file name does.
        title_fields["title"] = elements[0].text[:300]
    _set_status(document_id, Document.Status.EMBEDDING, **title_fields)
    embedder = get_embedder()
    vectors = embedder.embed_documents([draft.text for draft in drafts])

    index = get_index()
    with transaction.atomic():
        Chunk.objects.filter(document_id=document_id).delete()
        chunks = Chunk.objects.bulk_create(
            [
                Chunk(
                    document_id=document_id,
                    ordinal=draft.ordinal,
                    text=draft.text,
                    page=draft.page,
                    section=draft.section[:500],
                )
                for draft in drafts
            ]
        )
        # Old points first: a shorter new version must not leave stale tail points behind.
        index.delete_document(document_id)
        index.upsert(
            [
                IndexPoint(
                    point_id=chunk.point_id,
                    vector=vector,
                    chunk_id=chunk.pk,
                    document_id=document_id,
                    collection_id=document.collection_id,
                    department_id=document.collection.department_id,
                )
                for chunk, vector in zip(chunks, vectors, strict=True)
            ]
        )
        _set_status(
            document_id,
            Document.Status.INDEXED,
            indexed_at=timezone.now(),
            embedding_model=embedder.model_id,
        )
    logger.info(
        "document %s indexed: %d chunks in %.1fs",
        document_id,
        len(drafts),
        time.monotonic() - started,
    )
    return Document.Status.INDEXED
