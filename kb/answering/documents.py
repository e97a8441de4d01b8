"""Opening and downloading a document: the one rule for both doors.

A document the reader may not read is "not found" (NotReadable, so ids cannot be probed)
with an access.denied record naming what was asked for and whose it is. Downloading the
original also needs the collection to allow downloads, or the reader to curate it.
"""

from __future__ import annotations

from django.utils.translation import gettext_noop

from kb.accounts.access import Reader, can_download
from kb.answering.errors import Forbidden, InvalidInput, NotReadable
from kb.audit.trail import denied, record
from kb.library.models import Collection, Document, DocumentVersion

# Said in English through the API, in the reader's language by the portal (kb/portal/http.py).
DOWNLOADS_OFF = gettext_noop(
    "This collection allows answers and citations, but not downloading the originals."
)
INVALID_VERSION = gettext_noop("A version number.")


def readable_collection(reader: Reader, collection_id: int) -> Collection:
    collection = (
        Collection.objects.filter(pk__in=reader.collection_ids, pk=collection_id)
        .select_related("department")
        .first()
    )
    if collection is None:
        owner = Collection.objects.filter(pk=collection_id).values_list("department", flat=True)
        denied(("collection", collection_id), reason="not readable", department=owner.first())
        raise NotReadable("No such collection.")
    return collection


def readable_document(reader: Reader, document_id: int, purpose: str) -> Document:
    """The document by id, if this reader may read it; `purpose` (view, download, manage)
    goes into the denial record."""
    document = (
        reader.documents()
        .select_related("collection__department", "current_version")
        .filter(pk=document_id)
        .first()
    )
    if document is None:
        owner = Document.objects.filter(pk=document_id).values_list(
            "collection__department", flat=True
        )
        denied(
            ("document", document_id),
            reason=f"not readable ({purpose})",
            department=owner.first(),
        )
        raise NotReadable("No such document.")
    return document


def open_document(reader: Reader, document_id: int) -> Document:
    """Open a document to read its text (document.viewed)."""
    document = readable_document(reader, document_id, "view")
    current = document.current_version
    record(
        "document.viewed",
        target=document,
        department=document.collection.department,
        documents=[document.pk],
        details={"version": current.number if current else None},
    )
    return document


def download_document(reader: Reader, document_id: int, version: str | None) -> DocumentVersion:
    """The original file of a version (the current one unless `version` names another), for
    a reader allowed to download it (document.downloaded)."""
    document = readable_document(reader, document_id, "download")
    collection = document.collection
    if not can_download(reader.user, collection):
        denied(
            document,
            reason="downloads are off for this collection",
            department=collection.department,
            documents=[document.pk],
        )
        raise Forbidden(DOWNLOADS_OFF)
    versions = document.versions.all()
    if version is not None:
        if not version.isdigit():
            raise InvalidInput("version", INVALID_VERSION)
        chosen = versions.filter(number=int(version)).first()
    else:
        chosen = document.current_version or versions.order_by("-number").first()
    if chosen is None:
        raise NotReadable("No such version.")
    record(
        "document.downloaded",
        target=document,
        department=collection.department,
        documents=[document.pk],
        details={"version": chosen.number, "sha256": chosen.sha256},
    )
    return chosen
