"""Thin views: check access, parse input, call one service, render."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from kb.accounts.access import can_upload_to, readable_collections, readable_documents
from kb.library.services import UploadRejected, upload_document
from kb.portal.forms import AskForm, UploadForm
from kb.portal.services import answer_question


@login_required
@require_http_methods(["GET", "POST"])
def ask(request: HttpRequest) -> HttpResponse:
    form = AskForm(request.POST or None)
    answer = None
    if request.method == "POST" and form.is_valid():
        answer = answer_question(request.user, form.cleaned_data["question"])
    collections = readable_collections(request.user).select_related("department")
    return render(
        request, "portal/ask.html", {"form": form, "answer": answer, "collections": collections}
    )


@login_required
@require_GET
def collection_list(request: HttpRequest) -> HttpResponse:
    collections = (
        readable_collections(request.user)
        .select_related("department")
        .annotate(document_count=Count("documents"))
    )
    return render(request, "portal/collections.html", {"collections": collections})


@login_required
@require_http_methods(["GET", "POST"])
def collection_detail(request: HttpRequest, collection_id: int) -> HttpResponse:
    collection = get_object_or_404(
        readable_collections(request.user).select_related("department"), pk=collection_id
    )
    may_upload = can_upload_to(request.user, collection)
    form = UploadForm()
    status = 200
    if request.method == "POST":
        if not may_upload:
            return HttpResponse("Only curators of this department may upload.", status=403)
        form = UploadForm(request.POST, request.FILES)
        if form.is_valid():
            uploaded = form.cleaned_data["file"]
            try:
                result = upload_document(
                    collection=collection,
                    name=uploaded.name,
                    stream=uploaded,
                    size=uploaded.size,
                    uploaded_by_id=request.user.pk,
                )
            except UploadRejected as exc:
                messages.error(request, str(exc))
                status = exc.status
            else:
                if result.created:
                    messages.success(request, f"{uploaded.name} was uploaded and is queued.")
                else:
                    messages.info(request, f"{uploaded.name} is already in this collection.")
                return redirect("portal:collection", collection_id=collection.pk)
    documents = collection.documents.annotate(chunk_count=Count("chunks")).order_by("-created_at")
    return render(
        request,
        "portal/collection.html",
        {"collection": collection, "documents": documents, "form": form, "may_upload": may_upload},
        status=status,
    )


@login_required
@require_GET
def document_status(request: HttpRequest, collection_id: int) -> JsonResponse:
    collection = get_object_or_404(readable_collections(request.user), pk=collection_id)
    rows = collection.documents.values("id", "status", "error")
    return JsonResponse({"documents": list(rows)})


@login_required
@require_GET
def document_detail(request: HttpRequest, document_id: int) -> HttpResponse:
    document = get_object_or_404(
        readable_documents(request.user).select_related("collection__department"), pk=document_id
    )
    return render(
        request,
        "portal/document.html",
        {"document": document, "chunks": document.chunks.order_by("ordinal")},
    )


@login_required
@require_GET
def document_download(request: HttpRequest, document_id: int) -> FileResponse:
    document = get_object_or_404(readable_documents(request.user), pk=document_id)
    # Always an attachment with a generic type, so an uploaded HTML or SVG file can never
    # run in the portal's origin; SecurityMiddleware adds X-Content-Type-Options: nosniff.
    return FileResponse(
        document.original.open("rb"),
        as_attachment=True,
        filename=document.original_name,
        content_type="application/octet-stream",
    )
