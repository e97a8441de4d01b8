"""Thin views: check access, parse input, call one service, render."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from collections.abc import Iterator

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Max, Min, Prefetch
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import translation
from django.utils.translation import gettext, ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from inference.answering import Source
from ingest.index import MissingCollection
from ingest.index.unavailable import IndexUnavailable
from kb.accounts.access import (
    access_scope_for,
    can_download,
    can_upload_to,
    readable_collections,
    readable_documents,
)
from kb.audit import context as audit_context
from kb.audit.trail import denied, record
from kb.glossary.services import lexical_expansion, terms_for_question
from kb.library.attachments import attachment
from kb.library.components import get_index
from kb.library.models import Collection, Document, DocumentVersion, IndexGeneration
from kb.library.services import (
    BatchResult,
    UploadRejected,
    collection_backlog,
    delete_document,
    retry_version,
    upload_any,
)
from kb.library.upload_names import refuse_overlong_names
from kb.portal.forms import AskForm, SearchForm, UploadForm
from kb.portal.models import Conversation, Turn
from kb.portal.services import (
    Answer,
    answer_question,
    describe_chat_model,
    load_sources,
    search_passages,
    stream_answer,
)
from kb.portal.templatetags.answers import source_url, with_citation_links
from kb.routing.vllm import vllm_command
from kb.usage.quota import localized_notice

logger = logging.getLogger(__name__)


def _own_conversation_id(request: HttpRequest, form: AskForm) -> int | None:
    conversation_id: int | None = form.cleaned_data.get("conversation")
    if (
        conversation_id is not None
        and not Conversation.objects.filter(
            pk=conversation_id, user_id=int(request.user.pk or 0)
        ).exists()
    ):
        denied(("conversation", conversation_id), reason="not the asker's conversation")
        raise Http404("No such conversation.")
    return conversation_id


# Every lookup by id goes through one of these two: what the user may not read is "not found"
# (404, so ids cannot be probed) and leaves an access.denied record naming what was asked for.
def _readable_collection_or_404(request: HttpRequest, collection_id: int) -> Collection:
    collection = (
        readable_collections(request.user)
        .select_related("department")
        .filter(pk=collection_id)
        .first()
    )
    if collection is None:
        owner = Collection.objects.filter(pk=collection_id).values_list("department", flat=True)
        denied(("collection", collection_id), reason="not readable", department=owner.first())
        raise Http404("No such collection.")
    return collection


def _readable_document_or_404(request: HttpRequest, document_id: int, purpose: str) -> Document:
    document = (
        readable_documents(request.user)
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
        raise Http404("No such document.")
    return document


@login_required
@require_http_methods(["GET", "POST"])
def ask(request: HttpRequest) -> HttpResponse:
    """The ask page. Browsers with JavaScript stream the answer from `ask_stream`; without
    it the form posts here and the whole answer comes back in the page."""
    form = AskForm(request.POST or None)
    answer = None
    status = 200
    if request.method == "POST" and not form.is_valid():
        # The same refusal as the stream endpoint and the API: 400 and what is wrong.
        if wants_json(request):
            return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
        status = 400
    elif request.method == "POST":
        try:
            answer = _for_reader(
                answer_question(
                    request.user,
                    form.cleaned_data["question"],
                    _own_conversation_id(request, form),
                )
            )
            form = AskForm(initial={"conversation": answer.conversation_id})
        except IndexUnavailable:
            logger.warning("ask refused: the index is unavailable", exc_info=True)
            messages.error(request, index_unavailable_message())
            status = 503
    collections = readable_collections(request.user).select_related("department")
    return render(
        request,
        "portal/ask.html",
        {"form": form, "answer": answer, "collections": collections},
        status=status,
    )


def wants_json(request: HttpRequest) -> bool:
    """The page's scripts (and other clients) ask for JSON; a plain form post does not."""
    return request.headers.get("Accept", "").startswith("application/json")


def index_unavailable_message() -> str:
    """What a person is told while the search index is down (docs/security.md case 12)."""
    return gettext(
        "The document index is unavailable right now, so nothing can be searched or "
        "answered. Uploads are still accepted and will be indexed when it is back. "
        "Try again in a few minutes."
    )


def _for_reader(answer: Answer) -> Answer:
    """The answer as the portal shows it: the service's fixed texts (the "not found" answer,
    the notices), which it stores and the REST API returns in English, in the reader's
    language. What a model or the passages said is shown as it is."""
    return dataclasses.replace(
        answer,
        text=gettext(answer.text) if answer.mode == "not_found" else answer.text,
        # A quota notice carries values (department, limit, date): kb/usage re-renders it.
        notice=localized_notice(answer.notice),
    )


def _sse(event: str, data: object) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def _done_json(answer: Answer) -> dict[str, object]:
    answer = _for_reader(answer)
    return {
        "mode": answer.mode,
        # Rendered on the server: the text escaped, only verified [n] become links.
        "html": str(with_citation_links(answer.text, answer.sources)),
        "cited": answer.cited,
        "notice": answer.notice,
        "model": answer.model,
        "model_version": answer.model_version,
        "seconds": round(answer.seconds, 2),
        "conversation": answer.conversation_id,
        "turn": answer.turn_id,
        "follow_ups": answer.follow_ups,
    }


def _sources_json(sources: list[Source]) -> list[dict[str, object]]:
    return [
        {
            "number": s.number,
            "title": s.title,
            "page": s.page,
            "section": s.section,
            "snippet": " ".join(s.text.split()[:40]),
            "url": source_url(s),
        }
        for s in sources
    ]


@login_required
@require_POST
def ask_stream(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    """Server-sent events: `sources`, then `answer` (and `reasoning`) pieces as the model
    writes them, then `done` with the verified answer; `error` if something failed."""
    form = AskForm(request.POST)
    if not form.is_valid():
        return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
    conversation_id = _own_conversation_id(request, form)
    question = form.cleaned_data["question"]
    # The body streams after the middleware has returned: keep this request's audit context
    # (IP, request id) for the records written while answering.
    request_context = audit_context.current()
    # ... and its language, for the texts written into the stream.
    language = translation.get_language()

    def events() -> Iterator[bytes]:
        with audit_context.acting(request_context), translation.override(language):
            yield from answer_events()

    def answer_events() -> Iterator[bytes]:
        try:
            for event, payload in stream_answer(request.user, question, conversation_id):
                if event == "sources":
                    yield _sse("sources", _sources_json(payload))
                elif event == "done":
                    yield _sse("done", _done_json(payload))
                else:
                    yield _sse(event, {"text": payload})
        except IndexUnavailable:
            logger.warning("ask refused: the index is unavailable", exc_info=True)
            yield _sse("error", {"message": index_unavailable_message()})
        except Exception:
            logger.exception("answering failed")
            yield _sse(
                "error", {"message": gettext("Something went wrong while answering. Try again.")}
            )

    response = StreamingHttpResponse(events(), content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # proxies must pass each piece on at once
    return response


@login_required
@require_GET
def collection_list(request: HttpRequest) -> HttpResponse:
    collections = (
        readable_collections(request.user)
        .select_related("department")
        .annotate(document_count=Count("documents"))
    )
    return render(request, "portal/collections.html", {"collections": collections})


def _report_batch(request: HttpRequest, batch: BatchResult) -> None:
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


def _batch_json(batch: BatchResult) -> dict[str, object]:
    return {
        "uploaded": [
            {"name": r.version.original_name, "outcome": r.outcome, "document": r.document.pk}
            for r in batch.results
        ],
        "refused": [{"name": name, "reason": reason} for name, reason in batch.refused],
    }


def _latest_versions() -> Prefetch[str]:
    return Prefetch(
        "versions",
        queryset=DocumentVersion.objects.order_by("-number"),
        to_attr="ordered_versions",
    )


@login_required
@require_http_methods(["GET", "POST"])
def collection_detail(request: HttpRequest, collection_id: int) -> HttpResponse:
    collection = _readable_collection_or_404(request, collection_id)
    may_upload = can_upload_to(request.user, collection)
    form = UploadForm()
    status = 200
    if request.method == "POST":
        if not may_upload:
            denied(collection, reason="upload by a non-curator", department=collection.department)
            return HttpResponse(gettext("Only curators of this department may upload."), status=403)
        form = UploadForm(request.POST, request.FILES)
        if form.is_valid():
            batch = BatchResult()
            try:
                refuse_overlong_names(request, collection)
                uploads = request.FILES.getlist("file")
            except UploadRejected as exc:
                batch.refused.append((gettext("upload"), str(exc)))
                status, uploads = exc.status, []
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
            if wants_json(request):
                # The page's drag-and-drop uploader sends one file per request and shows
                # each file's outcome beside its progress bar.
                return JsonResponse(_batch_json(batch), status=status)
            _report_batch(request, batch)
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
def document_status(request: HttpRequest, collection_id: int) -> JsonResponse:
    collection = _readable_collection_or_404(request, collection_id)
    documents = collection.documents.prefetch_related(_latest_versions())
    rows = []
    for document in documents:
        versions = getattr(document, "ordered_versions", [])
        if versions:
            rows.append({"id": document.pk, **_version_json(versions[0])})
    return JsonResponse({"documents": rows, "backlog": collection_backlog(collection)})


@login_required
@require_GET
def document_detail(request: HttpRequest, document_id: int) -> HttpResponse:
    document = _readable_document_or_404(request, document_id, "view")
    current = document.current_version
    record(
        "document.viewed",
        target=document,
        department=document.collection.department,
        documents=[document.pk],
        details={"version": current.number if current else None},
    )
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
def document_download(request: HttpRequest, document_id: int) -> HttpResponseBase:
    document = _readable_document_or_404(request, document_id, "download")
    if not can_download(request.user, document.collection):
        denied(
            document,
            reason="downloads are off for this collection",
            department=document.collection.department,
            documents=[document.pk],
        )
        return HttpResponse(
            gettext(
                "This collection allows answers and citations, but not downloading the originals."
            ),
            status=403,
            content_type="text/plain; charset=utf-8",
        )
    number = request.GET.get("version")
    versions = document.versions.all()
    if number is not None:
        version = versions.filter(number=int(number) if number.isdigit() else -1).first()
    else:
        version = document.current_version or versions.order_by("-number").first()
    if version is None:
        raise Http404("no such version")
    record(
        "document.downloaded",
        target=document,
        department=document.collection.department,
        documents=[document.pk],
        details={"version": version.number, "sha256": version.sha256},
    )
    return attachment(version.original.open("rb"), version.original_name)


def _managed_document(request: HttpRequest, document_id: int) -> Document:
    document = _readable_document_or_404(request, document_id, "manage")
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


@login_required
@require_GET
def configured_models(request: HttpRequest) -> HttpResponse:
    """For admins: which models are configured and which produced the answers, by version."""
    if not request.user.is_superuser:
        denied(("page", "models"), reason="not a superadmin")
        raise Http404("No such page.")
    generations = list(IndexGeneration.objects.exclude(state=IndexGeneration.State.RETIRED))
    index = get_index()
    for generation in generations:
        # Counted now: the stored count is the one taken when the generation went live.
        with contextlib.suppress(MissingCollection):
            generation.point_count = index.count(generation.collection_name)
    answered_by = (
        Turn.objects.exclude(model="")
        .values("model", "model_version")
        .annotate(answers=Count("id"), first=Min("created_at"), last=Max("created_at"))
        .order_by("-last")
    )
    return render(
        request,
        "portal/models.html",
        {
            "llm": describe_chat_model(),
            "generations": generations,
            "answered_by": answered_by,
            "vllm_command": " ".join(vllm_command("0.0.0.0", 8001)),  # noqa: S104
        },
    )


@login_required
@require_GET
def search(request: HttpRequest) -> HttpResponse:
    """Passages only, no model: the same retrieval (and access filter) the answers use."""
    form = SearchForm(request.GET)
    if not form.is_valid():
        # Too long or with a NUL: refused as the API refuses it, never cut short and run.
        if wants_json(request):
            return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, str(error))
        return render(request, "portal/search.html", {"query": "", "sources": []}, status=400)
    query = form.cleaned_data["q"].strip()
    sources: list[Source] = []
    status = 200
    if query:
        try:
            # The asker's department glossaries widen the lexical search, as for answers.
            expansion = lexical_expansion(terms_for_question(request.user, query))
            hits = search_passages(query, access_scope_for(request.user), expansion)
        except IndexUnavailable:
            logger.warning("search refused: the index is unavailable", exc_info=True)
            messages.error(request, index_unavailable_message())
            hits, status = [], 503
        sources = load_sources(hits)
        if status == 200:
            record(
                "search.performed",
                documents={s.document_id for s in sources},
                details={"query": query, "chunks": [s.chunk_id for s in sources]},
            )
    return render(
        request, "portal/search.html", {"query": query, "sources": sources}, status=status
    )
