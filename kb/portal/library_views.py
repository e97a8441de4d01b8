"""The portal's library pages: collections, uploads, documents, their originals and their
versions. Reading goes through kb/answering/documents.py, the rule the REST API uses too;
uploads and changes through kb/library/services.py."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Prefetch
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from kb.accounts.access import can_download, can_upload_to, readable_collections, reader_for
from kb.answering.documents import (
    download_document,
    open_document,
    readable_collection,
    readable_document,
)
from kb.audit.trail import denied
from kb.library.attachments import attachment
from kb.library.models import Document, DocumentVersion
from kb.library.services import (
    collection_backlog,
    delete_document,
    retry_version,
)
from kb.portal.forms import UploadForm
from kb.portal.http import refusals_as_responses, wants_json
from kb.portal.uploads import batch_json, receive_uploads, report_batch


@login_required
@require_GET
def collection_list(request: HttpRequest) -> HttpResponse:
    collections = (
        readable_collections(request.user)
        .select_related("department")
        .annotate(document_count=Count("documents"))
    )
    return render(request, "portal/collections.html", {"collections": collections})


def _latest_versions() -> Prefetch[str]:
    return Prefetch(
        "versions",
        queryset=DocumentVersion.objects.order_by("-number"),
        to_attr="ordered_versions",
    )


@login_required
@require_http_methods(["GET", "POST"])
@refusals_as_responses
def collection_detail(request: HttpRequest, collection_id: int) -> HttpResponse:
    collection = readable_collection(reader_for(request.user), collection_id)
    may_upload = can_upload_to(request.user, collection)
    form = UploadForm()
    status = 200
    if request.method == "POST":
        if not may_upload:
            denied(collection, reason="upload by a non-curator", department=collection.department)
            return HttpResponse(gettext("Only curators of this department may upload."), status=403)
        form = UploadForm(request.POST, request.FILES)
        if form.is_valid():
            batch, status = receive_uploads(request, collection)
            if wants_json(request):
                # The page's drag-and-drop uploader sends one file per request and shows
                # each file's outcome beside its progress bar.
                return JsonResponse(batch_json(batch), status=status)
            report_batch(request, batch)
            if status == 200:
                return redirect("portal:collection", collection_id=collection.pk)
        else:
            # An empty file, or none: refused as the API refuses it (400, and why).
            status = 400
            if wants_json(request):
                names = [f.name or "upload" for f in request.FILES.getlist("file")] or [""]
                reasons = "; ".join(str(e) for errors in form.errors.values() for e in errors)
                return JsonResponse(
                    {"uploaded": [], "refused": [{"name": n, "reason": reasons} for n in names]},
                    status=400,
                )
    documents = (
        collection.documents.select_related("current_version")
        .prefetch_related(_latest_versions())
        .order_by("path")
    )
    return render(
        request,
        "portal/collection.html",
        {
            "collection": collection,
            "documents": documents,
            "backlog": collection_backlog(collection),
            "form": form,
            "may_upload": may_upload,
        },
        status=status,
    )


def _version_json(version: DocumentVersion) -> dict[str, object]:
    return {
        "id": version.pk,
        "number": version.number,
        "status": version.status,
        "status_label": version.get_status_display(),
        "progress": version.progress,
        "error_code": version.error_code,
        "error": version.error,
        "chunks": version.chunk_count,
        "pages": version.page_count,
        "seconds": version.total_seconds,
    }


@login_required
@require_GET
@refusals_as_responses
def document_status(request: HttpRequest, collection_id: int) -> JsonResponse:
    collection = readable_collection(reader_for(request.user), collection_id)
    documents = collection.documents.prefetch_related(_latest_versions())
    rows = []
    for document in documents:
        versions = getattr(document, "ordered_versions", [])
        if versions:
            rows.append({"id": document.pk, **_version_json(versions[0])})
    return JsonResponse({"documents": rows, "backlog": collection_backlog(collection)})


@login_required
@require_GET
@refusals_as_responses
def document_detail(request: HttpRequest, document_id: int) -> HttpResponse:
    document = open_document(reader_for(request.user), document_id)
    current = document.current_version
    chunks = current.chunks.order_by("ordinal") if current else []
    return render(
        request,
        "portal/document.html",
        {
            "document": document,
            "current": current,
            "chunks": chunks,
            "versions": document.versions.order_by("-number"),
            "may_manage": can_upload_to(request.user, document.collection),
            "may_download": can_download(request.user, document.collection),
        },
    )


@login_required
@require_GET
@refusals_as_responses
def document_download(request: HttpRequest, document_id: int) -> HttpResponseBase:
    version = download_document(reader_for(request.user), document_id, request.GET.get("version"))
    return attachment(version.original.open("rb"), version.original_name)


def _managed_document(request: HttpRequest, document_id: int) -> Document:
    document = readable_document(reader_for(request.user), document_id, "manage")
    if not can_upload_to(request.user, document.collection):
        denied(
            document,
            reason="not a curator of this collection",
            department=document.collection.department,
        )
        raise Http404("not a curator of this collection")
    return document


@login_required
@require_POST
@refusals_as_responses
def document_delete(request: HttpRequest, document_id: int) -> HttpResponse:
    document = _managed_document(request, document_id)
    collection_id, title = document.collection_id, document.title
    delete_document(document.pk)
    messages.success(
        request,
        gettext("%(title)s was deleted, with its versions and index entries.") % {"title": title},
    )
    return redirect("portal:collection", collection_id=collection_id)


@login_required
@require_POST
@refusals_as_responses
def version_retry(request: HttpRequest, document_id: int, number: int) -> HttpResponse:
    document = _managed_document(request, document_id)
    version = get_object_or_404(document.versions, number=number)
    if retry_version(version.pk):
        messages.success(
            request,
            gettext("%(name)s (version %(number)d) is queued again.")
            % {"name": version.original_name, "number": number},
        )
    else:
        messages.info(request, gettext("Only failed or quarantined versions can be retried."))
    return redirect("portal:collection", collection_id=document.collection_id)
