"""Files uploaded through the portal's collection page: each one stored and queued (or
refused, and why) by kb/library/services.py, and the outcome told to the uploader."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest
from django.utils.translation import gettext, ngettext

from kb.library.models import Collection
from kb.library.services import BatchResult, UploadRejected, upload_any
from kb.library.upload_names import refuse_overlong_names


def receive_uploads(request: HttpRequest, collection: Collection) -> tuple[BatchResult, int]:
    """Every file of the request into `collection`; the batch and the status to answer with
    (200, or the last refusal's: one bad file does not stop the others)."""
    batch, status = BatchResult(), 200
    try:
        refuse_overlong_names(request, collection)
        uploads = request.FILES.getlist("file")
    except UploadRejected as exc:
        batch.refused.append((gettext("upload"), str(exc)))
        return batch, exc.status
    for uploaded in uploads:
        try:
            batch.extend(
                upload_any(
                    collection=collection,
                    name=uploaded.name or "upload",
                    stream=uploaded,
                    size=uploaded.size or 0,
                    uploaded_by_id=request.user.pk,
                )
            )
        except UploadRejected as exc:
            batch.refused.append((uploaded.name or "upload", str(exc)))
            status = exc.status
    return batch, status


def report_batch(request: HttpRequest, batch: BatchResult) -> None:
    created = batch.count("created") + batch.count("new_version") + batch.count("retried")
    if created:
        messages.success(
            request,
            ngettext(
                "%(count)d file uploaded and queued for indexing.",
                "%(count)d files uploaded and queued for indexing.",
                created,
            )
            % {"count": created},
        )
    replaced = batch.count("new_version")
    if replaced:
        messages.info(
            request,
            ngettext(
                "%(count)d of them replaces an older version.",
                "%(count)d of them replace an older version.",
                replaced,
            )
            % {"count": replaced},
        )
    for result in batch.results:
        if result.outcome == "duplicate":
            messages.info(
                request,
                gettext("%(name)s is already in this collection.")
                % {"name": result.version.original_name},
            )
    # Why a file was refused stays as the upload service words it (a technical reason, in
    # English, like the ingestion errors on the collection page).
    for path, reason in batch.refused:
        messages.error(request, f"{path}: {reason}")


def batch_json(batch: BatchResult) -> dict[str, object]:
    return {
        "uploaded": [
            {"name": r.version.original_name, "outcome": r.outcome, "document": r.document.pk}
            for r in batch.results
        ],
        "refused": [{"name": name, "reason": reason} for name, reason in batch.refused],
    }
