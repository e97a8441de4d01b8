"""Actions on collections and documents. Views, tasks and commands call these; they hold the rules.

Uploads are checked before anything is stored (type, size, content sniffing, zip bombs,
XML declarations), deduplicated by content, and versioned by path. Ingestion itself is in
kb/library/ingestion.py.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.db.models import Count, Q
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from ingest.errors import IngestError, TooLarge
from ingest.formats import SNIFF_BYTES, Container, check_content, kind_for
from ingest.safety import archive_listing, check_before_parse, clean_member_path, copy_member
from kb.audit.models import AuditRecord
from kb.audit.trail import record
from kb.library.components import archive_limits
from kb.library.indexing import remove_version_points
from kb.library.models import Collection, Document, DocumentVersion
from kb.library.queue import queue_ingestion

logger = logging.getLogger(__name__)


# Document.path's length: a longer path is refused, never cut.
MAX_PATH_CHARS = 500


class UploadRejected(Exception):
    """The upload was refused; the message is shown to the uploader as is."""

    def __init__(self, message: str, status: int = 400, code: str = "rejected") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


# HTTP status for each kind of refusal: wrong type 415, over a size limit 413, else 400.
_STATUS_FOR_CODE = {
    "unsupported_type": 415,
    "content_mismatch": 415,
    "too_large": 413,
}


def _rejected(exc: IngestError) -> UploadRejected:
    return UploadRejected(str(exc), _STATUS_FOR_CODE.get(exc.code, 400), exc.code)


@dataclass(frozen=True)
class UploadResult:
    document: Document
    version: DocumentVersion
    # "created" (a new document), "new_version", "retried" (same bytes after a failure),
    # or "duplicate" (these bytes are already current or queued in the collection).
    outcome: str

    @property
    def created(self) -> bool:
        return self.outcome != "duplicate"


@dataclass
class BatchResult:
    """The outcome of many files at once (an archive, a folder)."""

    results: list[UploadResult] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def extend(self, other: BatchResult) -> None:
        self.results.extend(other.results)
        self.refused.extend(other.refused)

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.results if r.outcome == outcome)


def _sha256(stream: IO[bytes]) -> str:
    digest = hashlib.sha256()
    stream.seek(0)
    for block in iter(lambda: stream.read(1024 * 1024), b""):
        digest.update(block)
    stream.seek(0)
    return digest.hexdigest()


def default_title(path: str) -> str:
    name = posixpath.basename(path)
    return (posixpath.splitext(name)[0].replace("_", " ").strip() or name)[:300]


def enqueue_version(version_id: int) -> None:
    """Hand a version to the workers. If the broker is down the upload still stands: the
    recovery sweep sends every version that has no `enqueued_at` once the broker is back."""
    try:
        queue_ingestion(version_id)
    except Exception:
        logger.exception("could not queue version %s; the recovery sweep will retry", version_id)
        return
    DocumentVersion.objects.filter(pk=version_id).update(enqueued_at=timezone.now())


def _check_file(name: str, stream: IO[bytes], size: int) -> None:
    """Refuse a file before anything is stored: type, size, content, container safety."""
    try:
        kind = kind_for(name)
        if size > settings.KB_MAX_UPLOAD_BYTES:
            raise TooLarge(
                f"{name!r} is too large: {filesizeformat(size)}; the limit is "
                f"{filesizeformat(settings.KB_MAX_UPLOAD_BYTES)}"
            )
        if size == 0:
            raise UploadRejected(f"{name!r} is empty", 400, "empty")
        stream.seek(0)
        check_content(name, stream.read(SNIFF_BYTES))
        stream.seek(0)
        if kind.container is Container.OOXML:
            # Reads only the central directory and the XML parts' declarations, so it is safe
            # in the web process; the full parse happens in the sandbox.
            check_before_parse(stream, name, kind, archive_limits())
            stream.seek(0)
    except IngestError as exc:
        raise _rejected(exc) from exc


def _duplicate_of(collection: Collection, digest: str) -> DocumentVersion | None:
    """A version with these bytes that is current or on its way to being current."""
    return (
        DocumentVersion.objects.filter(document__collection=collection, sha256=digest)
        .filter(
            Q(index_state=DocumentVersion.IndexState.LIVE)
            | Q(status__in=DocumentVersion.IN_PROGRESS)
        )
        .select_related("document")
        .first()
    )


def upload_document(
    *,
    collection: Collection,
    name: str,
    stream: IO[bytes],
    size: int,
    uploaded_by_id: int | None,
    path: str | None = None,
) -> UploadResult:
    """Store one file and queue its ingestion.

    The same bytes already current (or queued) anywhere in the collection add nothing; new
    bytes at an existing path become that document's next version.
    """
    _check_file(name, stream, size)
    if kind_for(name).container is Container.ARCHIVE:
        raise UploadRejected(f"{name!r} is an archive; upload it as an archive", 400, "archive")
    clean_path = clean_member_path(path or posixpath.basename(name.replace("\\", "/")))
    if clean_path is None:
        raise UploadRejected(f"{name!r} has no usable file name", 400, "bad_name")
    if len(clean_path) > MAX_PATH_CHARS:
        # Kept whole or not at all: a cut path could name another document.
        raise UploadRejected(
            f"the path {clean_path[:80]!r}… is {len(clean_path)} characters long; the limit "
            f"is {MAX_PATH_CHARS}",
            400,
            "name_too_long",
        )
    digest = _sha256(stream)
    stored: DocumentVersion | None = None
    try:
        with transaction.atomic():
            # One upload at a time per collection: the duplicate check and the version
            # number must not race with a concurrent upload of the same file.
            Collection.objects.select_for_update().filter(pk=collection.pk).first()
            duplicate = _duplicate_of(collection, digest)
            if duplicate is not None:
                return UploadResult(duplicate.document, duplicate, "duplicate")
            document = Document.objects.filter(collection=collection, path=clean_path).first()
            number = 1
            if document is None:
                document = Document.objects.create(
                    collection=collection, path=clean_path, title=default_title(clean_path)
                )
            else:
                latest = document.versions.order_by("-number").first()
                if latest is not None and latest.sha256 == digest:
                    # The same file again after it failed: that is a request to try again.
                    retry_version(latest.pk)
                    latest.refresh_from_db()
                    return UploadResult(document, latest, "retried")
                number = (latest.number + 1) if latest else 1
            stored = DocumentVersion(
                document=document,
                number=number,
                original_name=posixpath.basename(clean_path)[:300],
                size_bytes=size,
                sha256=digest,
                uploaded_by_id=uploaded_by_id,
            )
            stored.original.save(clean_path, File(stream), save=False)
            stored.save()
            version_id = stored.pk
            record(
                "document.uploaded" if number == 1 else "document.new_version",
                target=document,
                department=collection.department_id,
                documents=[document.pk],
                details={
                    "collection": collection.pk,
                    "path": clean_path,
                    "version": number,
                    "sha256": digest,
                    "bytes": size,
                },
            )
            # Queue only once the row is committed, or the worker may look for it too early.
            transaction.on_commit(lambda: enqueue_version(version_id))
    except Exception:
        if stored is not None and stored.original.name:
            stored.original.storage.delete(stored.original.name)  # no orphaned file
        raise
    return UploadResult(document, stored, "created" if number == 1 else "new_version")


def upload_archive(
    *,
    collection: Collection,
    name: str,
    stream: IO[bytes],
    size: int,
    uploaded_by_id: int | None,
    prefix: str = "",
) -> BatchResult:
    """Expand a zip into documents whose paths keep the archive's folders.

    Refused as a whole, before anything is expanded, if it is a zip bomb. Members that cannot
    be ingested (unsupported, nested archives, refused content) are listed with their reason;
    the others are stored and queued.
    """
    _check_file(name, stream, size)
    batch = BatchResult()
    with tempfile.NamedTemporaryFile(prefix="kb-upload-", suffix=".zip") as spool:
        stream.seek(0)
        for block in iter(lambda: stream.read(1024 * 1024), b""):
            spool.write(block)
        spool.flush()
        try:
            listing = archive_listing(Path(spool.name), name, archive_limits())
        except IngestError as exc:
            raise _rejected(exc) from exc
        for skipped, reason in listing.skipped:
            batch.refused.append((posixpath.join(prefix, skipped) if prefix else skipped, reason))
        for member in listing.members:
            member_path = posixpath.join(prefix, member.path) if prefix else member.path
            try:
                if kind_for(member.path).container is Container.ARCHIVE:
                    raise UploadRejected("archives inside archives are not expanded")
                if member.encrypted:
                    raise UploadRejected("the entry is encrypted inside the archive")
                with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as content:
                    copy_member(Path(spool.name), member, content)
                    batch.results.append(
                        upload_document(
                            collection=collection,
                            name=member.path,
                            stream=content,
                            size=member.size,
                            uploaded_by_id=uploaded_by_id,
                            path=member_path,
                        )
                    )
            except (UploadRejected, IngestError) as exc:
                batch.refused.append((member_path, str(exc)))
    return batch


def upload_any(
    *,
    collection: Collection,
    name: str,
    stream: IO[bytes],
    size: int,
    uploaded_by_id: int | None,
    path: str | None = None,
) -> BatchResult:
    """One uploaded file: an archive is expanded, anything else stored as one document.

    Whatever is not ingested is audited (`upload.refused`): the whole file when it is
    refused (and UploadRejected raised), else each archive entry left out, with its reason.
    """
    try:
        try:
            is_archive = kind_for(name).container is Container.ARCHIVE
        except IngestError as exc:
            raise _rejected(exc) from exc
        if is_archive:
            folder = posixpath.splitext(path)[0] if path else ""
            batch = upload_archive(
                collection=collection,
                name=name,
                stream=stream,
                size=size,
                uploaded_by_id=uploaded_by_id,
                prefix=folder,
            )
        else:
            result = upload_document(
                collection=collection,
                name=name,
                stream=stream,
                size=size,
                uploaded_by_id=uploaded_by_id,
                path=path,
            )
            batch = BatchResult(results=[result])
    except UploadRejected as exc:
        audit_upload_refusal(collection, name, [(name, str(exc))])
        raise
    if batch.refused:
        audit_upload_refusal(collection, name, batch.refused)
    return batch


# The most refused entries one audit record lists (a hostile archive may hold thousands).
_AUDITED_REFUSALS = 200


def audit_upload_refusal(collection: Collection, name: str, refused: list[tuple[str, str]]) -> None:
    record(
        "upload.refused",
        outcome=AuditRecord.Outcome.FAILURE,
        target=collection,
        department=collection.department_id,
        details={
            "file": name[:500],
            "refused": [
                {"path": path[:500], "reason": reason[:300]}
                for path, reason in refused[:_AUDITED_REFUSALS]
            ],
            "count": len(refused),
        },
    )


def files_under(root: Path) -> Iterator[Path]:
    """Every regular file below `root`, in a stable order, skipping hidden ones."""
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            yield path


def upload_folder(
    *,
    collection: Collection,
    root: Path,
    uploaded_by_id: int | None,
    on_file: Callable[[Path], None] | None = None,
) -> BatchResult:
    """Upload every file below `root`, keeping relative paths (zips become folders)."""
    batch = BatchResult()
    for path in files_under(root):
        relative = path.relative_to(root).as_posix()
        try:
            with path.open("rb") as stream:
                batch.extend(
                    upload_any(
                        collection=collection,
                        name=path.name,
                        stream=stream,
                        size=path.stat().st_size,
                        uploaded_by_id=uploaded_by_id,
                        path=relative,
                    )
                )
        except UploadRejected as exc:
            batch.refused.append((relative, str(exc)))
        except OSError as exc:
            batch.refused.append((relative, f"cannot be read: {exc}"))
        if on_file is not None:
            on_file(path)
    return batch


def retry_version(version_id: int) -> bool:
    """Queue a failed or quarantined version again, with a fresh attempt count."""
    updated = DocumentVersion.objects.filter(
        pk=version_id,
        status__in=[DocumentVersion.Status.FAILED, DocumentVersion.Status.QUARANTINED],
    ).update(
        status=DocumentVersion.Status.QUEUED,
        attempts=0,
        progress=0,
        error="",
        error_code="",
        claimed_by="",
        enqueued_at=None,
    )
    if updated:
        version = DocumentVersion.objects.select_related("document__collection").get(pk=version_id)
        record(
            "document.retried",
            target=version.document,
            department=version.document.collection.department_id,
            documents=[version.document_id],
            details={"version": version.number},
        )
        transaction.on_commit(lambda: enqueue_version(version_id))
    return bool(updated)


def delete_document(document_id: int) -> bool:
    """Remove a document: its index points first, then its rows, then its stored files."""
    versions = list(DocumentVersion.objects.filter(document_id=document_id))
    # Invisible from this moment, even before the points are gone.
    DocumentVersion.objects.filter(
        document_id=document_id, index_state=DocumentVersion.IndexState.LIVE
    ).update(index_state=DocumentVersion.IndexState.HIDDEN)
    for version in versions:
        remove_version_points(version.pk)
    files = [(v.original.storage, v.original.name) for v in versions if v.original.name]

    def delete_files() -> None:
        for storage, name in files:
            storage.delete(name)

    document = Document.objects.select_related("collection").filter(pk=document_id).first()
    with transaction.atomic():
        deleted = Document.objects.filter(pk=document_id).delete()[0] > 0
        if deleted and document is not None:
            record(
                "document.deleted",
                target=("document", document_id),
                department=document.collection.department_id,
                documents=[document_id],
                details={"path": document.path, "versions": len(versions)},
            )
        transaction.on_commit(delete_files)
    return deleted


def collection_backlog(collection: Collection) -> dict[str, int]:
    """How many versions of the collection are in each status (superseded ones excluded)."""
    rows = (
        DocumentVersion.objects.filter(document__collection=collection)
        .exclude(status=DocumentVersion.Status.SUPERSEDED)
        .values("status")
        .annotate(n=Count("id"))
    )
    counts = {status: 0 for status in DocumentVersion.Status.values}
    counts.update({row["status"]: row["n"] for row in rows})
    counts["in_progress"] = sum(counts[s] for s in DocumentVersion.IN_PROGRESS)
    return counts
