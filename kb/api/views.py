"""REST API v1. Thin views over the same services the portal uses, with the request's scope
(kb/api/scope.py) in every query and every lookup by id."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, F, QuerySet
from django.http import StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inference.answering import Source
from ingest.index.unavailable import IndexUnavailable
from kb.accounts.access import can_upload_to, curated_departments, is_auditor
from kb.api import serializers as s
from kb.api.authentication import TokenAuth
from kb.api.idempotency import (
    idempotent,
    release_unfinished_stream,
    remember_stream,
    sse,
)
from kb.api.models import ApiToken, TokenUsage
from kb.api.problems import (
    CONTENT_TYPE,
    ProblemResponse,
    index_unavailable_problem,
    problem,
    server_error_detail,
)
from kb.api.scope import access_scope, collection_ids, token_auth
from kb.audit import context as audit_context
from kb.audit.models import AuditRecord
from kb.audit.trail import denied, record
from kb.glossary.services import lexical_expansion, terms_for_question
from kb.library.attachments import attachment
from kb.library.models import Collection, Document
from kb.library.services import BatchResult, UploadRejected, delete_document, upload_any
from kb.library.upload_names import refuse_overlong_names
from kb.portal.models import Conversation
from kb.portal.services import (
    Answer,
    answer_question,
    load_sources,
    search_passages,
    stream_answer,
    turn_for_history,
)
from kb.usage.meter import charged_to, turn_tokens

PROBLEMS = {
    code: OpenApiResponse(s.ProblemSerializer, description=text)
    for code, text in {
        400: "Invalid request (problem details)",
        401: "Missing or invalid token",
        403: "The token lacks the action, or the acting user the role",
        404: "Not found, or not readable with this token",
        409: "The first request with this Idempotency-Key is still running; retry later",
        413: "File too large",
        415: "Unsupported file type",
        422: "This Idempotency-Key was used for a different request",
        429: "Rate limit reached; see Retry-After",
    }.items()
}

logger = logging.getLogger(__name__)


def _id(name: str) -> OpenApiParameter:
    """A path parameter naming a row: a positive integer."""
    return OpenApiParameter(name, {"type": "integer", "minimum": 1}, OpenApiParameter.PATH)


IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "maxLength": 200},
    OpenApiParameter.HEADER,
    description="A key unique to this request (at most 200 printable characters): a retry "
    "with the same key and the same request gets the first response again, with "
    "`Idempotent-Replayed: true`, and does nothing twice.",
)
# Lists are paged with an opaque cursor; one that does not decode is answered 404.
LIST_NOT_FOUND = OpenApiResponse(s.ProblemSerializer, description="Invalid cursor")


def _problems(
    *codes: int, overrides: dict[int, OpenApiResponse] | None = None
) -> dict[tuple[int, str], OpenApiResponse]:
    """Error responses, documented with the content type they are sent with."""
    chosen = {code: PROBLEMS[code] for code in (400, 401, 403, 429, *codes) if code in PROBLEMS}
    chosen.update(overrides or {})
    return {(code, CONTENT_TYPE): response for code, response in sorted(chosen.items())}


def _list_problems(*codes: int) -> dict[tuple[int, str], OpenApiResponse]:
    return _problems(*codes, overrides={} if 404 in codes else {404: LIST_NOT_FOUND})


class TokenAllows(BasePermission):
    """The token carries at least one of the view's actions."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if not isinstance(request.auth, TokenAuth):
            return False  # no Authorization header at all: DRF answers 401
        auth = token_auth(request)
        actions: tuple[str, ...] = getattr(view, "actions_required", ())
        if any(auth.token.allows(action) for action in actions):
            return True
        denied(auth.token, reason=f"token lacks the {'/'.join(actions)} action")
        self.message = f"This token may not do this (needs one of: {', '.join(actions)})."
        return False


class ApiView(APIView):
    permission_classes = [TokenAllows]
    actions_required: tuple[str, ...] = ()


def count_use(request: Request, action: str, answer: Answer | None = None) -> None:
    """One more call of this action by this token today (and the model tokens it used, as
    the usage meter counted them: the answer and the rewrite of a follow-up)."""
    auth = token_auth(request)
    prompt_tokens, completion_tokens = turn_tokens(answer.turn_id) if answer else (0, 0)
    row, _ = TokenUsage.objects.get_or_create(
        token=auth.token, day=timezone.now().date(), action=action
    )
    TokenUsage.objects.filter(pk=row.pk).update(
        requests=F("requests") + 1,
        prompt_tokens=F("prompt_tokens") + prompt_tokens,
        completion_tokens=F("completion_tokens") + completion_tokens,
    )


def _passages(sources: list[Source]) -> list[dict[str, Any]]:
    return [
        {
            "number": source.number,
            "chunk_id": source.chunk_id,
            "document_id": source.document_id,
            "title": source.title,
            "page": source.page,
            "section": source.section,
            "text": source.text,
            "score": round(source.score, 5),
            "url": reverse("api:document", args=[source.document_id]),
        }
        for source in sources
    ]


def _answer_json(answer: Answer) -> dict[str, Any]:
    return {
        "question": answer.question,
        "answer": answer.text,
        "mode": answer.mode,
        "notice": answer.notice,
        "cited": answer.cited,
        "sources": _passages(answer.sources),
        "model": answer.model,
        "model_version": answer.model_version,
        "seconds": round(answer.seconds, 3),
        "conversation": answer.conversation_id,
        "turn": answer.turn_id,
    }


class SearchView(ApiView):
    actions_required = (ApiToken.Action.SEARCH,)

    @extend_schema(
        request=s.SearchRequestSerializer,
        responses={200: s.SearchResponseSerializer, **_problems()},
        summary="Passages for a query, with scores and citations; no generation",
    )
    def post(self, request: Request) -> Response:
        body = s.SearchRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        query = body.validated_data["query"]
        expansion = lexical_expansion(terms_for_question(request.user, query))  # glossaries
        sources = load_sources(search_passages(query, access_scope(request), expansion))
        record(
            "search.performed",
            documents={source.document_id for source in sources},
            details={"query": query, "chunks": [x.chunk_id for x in sources], "via": "api"},
        )
        count_use(request, "search")
        return Response({"query": query, "passages": _passages(sources)})


def _own_conversation(request: Request, conversation_id: int | None) -> int | None:
    if conversation_id is None:
        return None
    if not Conversation.objects.filter(
        pk=conversation_id, user_id=int(request.user.pk or 0)
    ).exists():
        denied(("conversation", conversation_id), reason="not the acting user's conversation")
        raise NotFound("No such conversation.")
    return conversation_id


# One event of a streamed answer, as `event:` and `data:` lines (the schema of each event).
ANSWER_EVENT = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["sources", "answer", "done", "error"]},
        "data": {
            "type": "string",
            "description": 'JSON: the passages (`sources`), `{"text": ...}` (`answer`), '
            "the whole answer as the JSON response has it (`done`), or a problem details "
            "object (`error`: the stream ends without `done`; `index-unavailable` with "
            "`retry_after` when the index is down).",
        },
    },
    "required": ["event", "data"],
}


class AskView(ApiView):
    actions_required = (ApiToken.Action.ASK,)

    @extend_schema(
        request=s.AskRequestSerializer,
        parameters=[IDEMPOTENCY_KEY],
        responses={
            (200, "application/json"): s.AnswerSerializer,
            (200, "text/event-stream"): ANSWER_EVENT,
            **_problems(404, 409, 422),
        },
        summary="Ask a question: the answer with verified citations, or a stream of events",
        description="With `stream: true` the response is server-sent events: `sources`, "
        "`answer` pieces, then `done` with the whole answer (the JSON body otherwise "
        "returned), or `error` with a problem details object if answering fails midway. "
        "Send `Idempotency-Key` to make a retried request return the first answer.",
    )
    @idempotent
    def post(self, request: Request) -> HttpResponseBase:
        body = s.AskRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        question = body.validated_data["question"]
        conversation = _own_conversation(request, body.validated_data.get("conversation"))
        scope = access_scope(request)
        if not body.validated_data["stream"]:
            with charged_to(token_auth(request).token):  # the meter charges the token
                answer = answer_question(request.user, question, conversation, scope)
            count_use(request, "ask", answer)
            return Response(_answer_json(answer))
        return self._stream(request, question, conversation, scope)

    def _stream(
        self, request: Request, question: str, conversation: int | None, scope: Any
    ) -> StreamingHttpResponse:
        request_context = audit_context.current()
        user = request.user
        token = token_auth(request).token

        def events() -> Iterator[bytes]:
            with audit_context.acting(request_context), charged_to(token):
                try:
                    for event, payload in stream_answer(user, question, conversation, scope):
                        if event == "sources":
                            data: Any = _passages(payload)
                        elif event == "done":
                            data = _answer_json(payload)
                            count_use(request, "ask", payload)
                            remember_stream(request, data)
                        else:
                            data = {"text": payload}
                        yield sse(event, data)
                except IndexUnavailable:
                    # The 200 and the headers are gone already: the stream ends with an
                    # `error` event holding the problem the JSON request would have had.
                    logger.warning("streamed ask refused: the index is unavailable", exc_info=True)
                    yield sse("error", index_unavailable_problem(request.path))
                except Exception:
                    logger.exception("streamed answer failed")
                    yield sse("error", problem(500, server_error_detail(), instance=request.path))
                finally:
                    release_unfinished_stream(request)

        response = StreamingHttpResponse(events(), content_type="text/event-stream; charset=utf-8")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return response


def _readable_collections(request: Request) -> QuerySet[Collection]:
    return Collection.objects.filter(pk__in=collection_ids(request))


def _collection_or_404(request: Request, collection_id: int) -> Collection:
    collection = _readable_collections(request).filter(pk=collection_id).first()
    if collection is None:
        denied(("collection", collection_id), reason="not readable with this token")
        raise NotFound("No such collection.")
    return collection


def _require_curator(request: Request, collection: Collection) -> None:
    if not token_auth(request).token.allows(ApiToken.Action.INGEST):
        denied(collection, reason="token lacks the ingest action")
        raise PermissionDenied("This token may not change collections or documents (ingest).")
    if not can_upload_to(request.user, collection):
        denied(collection, reason="not a curator of this collection")
        raise PermissionDenied("Only curators of the collection's department may change it.")


READ_ACTIONS = (ApiToken.Action.SEARCH, ApiToken.Action.ASK, ApiToken.Action.INGEST)


class CollectionList(generics.ListCreateAPIView[Collection]):
    permission_classes = [TokenAllows]
    actions_required = READ_ACTIONS
    serializer_class = s.CollectionSerializer

    def get_queryset(self) -> QuerySet[Collection]:
        return _readable_collections(self.request).annotate(document_count=Count("documents"))

    @extend_schema(responses={200: s.CollectionSerializer(many=True), **_list_problems()})
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(responses={201: s.CollectionSerializer, **_problems()})
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().post(request, *args, **kwargs)

    def perform_create(self, serializer: Any) -> None:
        auth = token_auth(self.request)
        if not auth.token.allows(ApiToken.Action.INGEST):
            denied(("collection", "new"), reason="token lacks the ingest action")
            raise PermissionDenied("This token may not create collections (ingest).")
        department = serializer.validated_data["department"]
        if not curated_departments(self.request.user).filter(pk=department.pk).exists():
            denied(("department", department.pk), reason="not a curator of this department")
            raise PermissionDenied("Only curators of a department may create its collections.")
        collection = serializer.save()  # the audit signal records collection.created
        collection.document_count = 0


@extend_schema(parameters=[_id("collection_id")])
class CollectionDetail(generics.RetrieveUpdateDestroyAPIView[Collection]):
    permission_classes = [TokenAllows]
    actions_required = READ_ACTIONS
    serializer_class = s.CollectionSerializer
    http_method_names = ["get", "patch", "delete", "head", "options"]

    def get_object(self) -> Collection:
        collection = _collection_or_404(self.request, int(self.kwargs["collection_id"]))
        collection.document_count = collection.documents.count()  # type: ignore[attr-defined]  # the annotation the list view adds, filled by hand for one object
        return collection

    @extend_schema(responses={200: s.CollectionSerializer, **_problems(404)})
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(responses={200: s.CollectionSerializer, **_problems(404)})
    def patch(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().patch(request, *args, **kwargs)

    @extend_schema(responses={204: None, **_problems(404)})
    def delete(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().delete(request, *args, **kwargs)

    def perform_update(self, serializer: Any) -> None:
        collection = serializer.instance
        _require_curator(self.request, collection)
        new_department = serializer.validated_data.get("department")
        if (
            new_department is not None
            and not curated_departments(self.request.user).filter(pk=new_department.pk).exists()
        ):
            raise PermissionDenied("You may move a collection only to a department you curate.")
        serializer.save()

    def perform_destroy(self, instance: Collection) -> None:
        _require_curator(self.request, instance)
        for document_id in list(instance.documents.values_list("pk", flat=True)):
            delete_document(document_id)
        instance.delete()


def _upload_json(batch: BatchResult) -> dict[str, Any]:
    return {
        "results": [
            {
                "document": r.document.pk,
                "path": r.document.path,
                "version": r.version.number,
                "status": r.version.status,
                "outcome": r.outcome,
            }
            for r in batch.results
        ],
        "refused": [{"path": path, "reason": reason} for path, reason in batch.refused],
    }


@extend_schema(parameters=[_id("collection_id")])
class CollectionDocuments(generics.ListAPIView[Document]):
    permission_classes = [TokenAllows]
    actions_required = READ_ACTIONS
    serializer_class = s.DocumentSerializer
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    def get_queryset(self) -> QuerySet[Document]:
        collection = _collection_or_404(self.request, int(self.kwargs["collection_id"]))
        return collection.documents.select_related("current_version").prefetch_related("versions")

    @extend_schema(responses={200: s.DocumentSerializer(many=True), **_list_problems(404)})
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request={"multipart/form-data": s.UploadRequestSerializer},
        parameters=[IDEMPOTENCY_KEY],
        responses={
            201: s.UploadResponseSerializer,
            200: OpenApiResponse(s.UploadResponseSerializer, description="Nothing new (duplicate)"),
            **_problems(404, 409, 413, 415, 422),
        },
        summary="Upload a document (or a zip of them) into the collection",
        description="Send `Idempotency-Key` so that a retried upload adds nothing twice.",
    )
    @idempotent
    def post(self, request: Request, collection_id: int) -> Response:
        collection = _collection_or_404(request, collection_id)
        _require_curator(request, collection)
        body = s.UploadRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        uploaded = body.validated_data["file"]
        path = body.validated_data.get("path") or None
        try:
            refuse_overlong_names(request, collection)
            batch = upload_any(
                collection=collection,
                name=path or uploaded.name or "upload",
                stream=uploaded,
                size=uploaded.size or 0,
                uploaded_by_id=request.user.pk,
                path=path,  # folders included ("travel/hotels.md"), not only the file name
            )
        except UploadRejected as exc:
            return ProblemResponse(exc.status, str(exc), kind=exc.code)
        count_use(request, "ingest")
        created = any(r.outcome != "duplicate" for r in batch.results)
        return Response(_upload_json(batch), status=201 if created else 200)


def _document_or_404(request: Request, document_id: int) -> Document:
    document = (
        Document.objects.filter(collection_id__in=collection_ids(request), pk=document_id)
        .select_related("collection", "current_version")
        .prefetch_related("versions")
        .first()
    )
    if document is None:
        denied(("document", document_id), reason="not readable with this token")
        raise NotFound("No such document.")
    return document


@extend_schema(parameters=[_id("document_id")])
class DocumentDetail(ApiView):
    actions_required = READ_ACTIONS

    @extend_schema(responses={200: s.DocumentSerializer, **_problems(404)})
    def get(self, request: Request, document_id: int) -> Response:
        document = _document_or_404(request, document_id)
        return Response(s.DocumentSerializer(document).data)

    @extend_schema(responses={204: None, **_problems(404)})
    def delete(self, request: Request, document_id: int) -> Response:
        document = _document_or_404(request, document_id)
        _require_curator(request, document.collection)
        delete_document(document.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(parameters=[_id("document_id")])
class DocumentDownload(ApiView):
    actions_required = READ_ACTIONS

    @extend_schema(
        parameters=[OpenApiParameter("version", int, required=False)],
        responses={
            (200, "application/octet-stream"): OpenApiTypes.BINARY,
            **_problems(404),
        },
        summary="The original file, where the collection allows downloads",
    )
    def get(self, request: Request, document_id: int) -> HttpResponseBase:
        document = _document_or_404(request, document_id)
        collection = document.collection
        if not (collection.allow_download or can_upload_to(request.user, collection)):
            denied(
                document, reason="downloads are off for this collection", documents=[document.pk]
            )
            raise PermissionDenied(
                "This collection allows answers and citations, but not downloading originals."
            )
        number = request.query_params.get("version")
        versions = document.versions.all()
        if number is not None:
            if not number.isdigit():
                raise ValidationError({"version": ["A version number."]})
            version = versions.filter(number=int(number)).first()
        else:
            version = document.current_version or versions.order_by("-number").first()
        if version is None:
            raise NotFound("No such version.")
        record(
            "document.downloaded",
            target=document,
            department=collection.department_id,
            documents=[document.pk],
            details={"version": version.number, "via": "api"},
        )
        return attachment(version.original.open("rb"), version.original_name)


class ConversationList(generics.ListAPIView[Conversation]):
    permission_classes = [TokenAllows]
    actions_required = (ApiToken.Action.ASK,)
    serializer_class = s.ConversationSerializer

    def get_queryset(self) -> QuerySet[Conversation]:
        return Conversation.objects.filter(user_id=int(self.request.user.pk or 0))

    @extend_schema(responses={200: s.ConversationSerializer(many=True), **_list_problems()})
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


@extend_schema(parameters=[_id("conversation_id")])
class ConversationDetail(ApiView):
    actions_required = (ApiToken.Action.ASK,)

    @extend_schema(responses={200: s.ConversationDetailSerializer, **_problems(404)})
    def get(self, request: Request, conversation_id: int) -> Response:
        conversation = Conversation.objects.filter(
            pk=conversation_id, user_id=int(request.user.pk or 0)
        ).first()
        if conversation is None:
            denied(("conversation", conversation_id), reason="not the acting user's conversation")
            raise NotFound("No such conversation.")
        readable = set(
            Document.objects.filter(collection_id__in=collection_ids(request)).values_list(
                "pk", flat=True
            )
        )
        turns = []
        for turn in conversation.turns.all():
            view = turn_for_history(turn, readable, reviewing=False)
            turns.append(
                {
                    "id": turn.pk,
                    "question": turn.question,
                    "answer": None if view["withheld"] else turn.answer,
                    "withheld": view["withheld"],
                    "mode": turn.mode,
                    "model": turn.model,
                    "created_at": turn.created_at,
                }
            )
        data = s.ConversationSerializer(conversation).data
        return Response({**data, "turns": s.TurnSerializer(turns, many=True).data})


class UsageView(ApiView):
    actions_required = tuple(ApiToken.Action.values)

    @extend_schema(responses={200: s.UsageResponseSerializer, **_problems()})
    def get(self, request: Request) -> Response:
        token = token_auth(request).token
        rows = TokenUsage.objects.filter(token=token).order_by("-day", "action")[:400]
        return Response({"token": token.prefix, "usage": s.UsageSerializer(rows, many=True).data})


class AuditRecords(generics.ListAPIView[AuditRecord]):
    permission_classes = [TokenAllows]
    actions_required = (ApiToken.Action.ADMIN,)
    serializer_class = s.AuditRecordSerializer

    def get_queryset(self) -> QuerySet[AuditRecord]:
        if not is_auditor(self.request.user):
            denied(("audit", "trail"), reason="not an auditor", via="api")
            raise PermissionDenied("Only auditors may read the audit trail.")
        records = AuditRecord.objects.all()
        params = self.request.query_params
        for name in ("action", "actor"):
            if "\x00" in params.get(name, ""):  # PostgreSQL text cannot hold NUL (was a 500)
                raise ValidationError({name: ["Must not contain NUL characters."]})
        if params.get("action"):
            records = records.filter(action=params["action"])
        if params.get("actor"):
            records = records.filter(actor=params["actor"])
        if str(params.get("after_seq", "")).isdigit():
            records = records.filter(seq__gt=int(params["after_seq"]))
        record("audit.exported", details={"format": "api", "filters": dict(params.items())})
        return records

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response([r.as_export_dict() for r in page or []])

    @extend_schema(
        parameters=[
            OpenApiParameter("action", str, required=False),
            OpenApiParameter("actor", str, required=False),
            OpenApiParameter("after_seq", int, required=False),
        ],
        responses={200: s.AuditRecordSerializer(many=True), **_list_problems()},
        summary="Audit records, newest first (auditor accounts, `admin` action)",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class RotateToken(ApiView):
    actions_required = tuple(ApiToken.Action.values)

    @extend_schema(
        request=s.RotateRequestSerializer,
        responses={201: s.NewTokenSerializer, **_problems()},
        summary="Replace this token with a new one; the old one works for a grace period",
    )
    def post(self, request: Request) -> Response:
        body = s.RotateRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        old = token_auth(request).token
        if old.replaced_by_id is not None:
            raise ValidationError({"token": ["This token was already rotated."]})
        with transaction.atomic():
            new, secret = ApiToken.issue(
                account=old.account,
                name=old.name,
                actions=list(old.actions),
                rate_limit_per_minute=old.rate_limit_per_minute,
                expires_at=old.expires_at,
            )
            new.departments.set(old.departments.all())
            new.collections.set(old.collections.all())
            grace_end = timezone.now() + timedelta(hours=body.validated_data["grace_hours"])
            old.replaced_by = new
            old.expires_at = min(grace_end, old.expires_at) if old.expires_at else grace_end
            old.save(update_fields=["replaced_by", "expires_at"])
            record(
                "token.created",
                target=new,
                details={"prefix": new.prefix, "rotated_from": old.prefix},
            )
        return Response(
            {
                "token": secret,
                "prefix": new.prefix,
                "expires_at": new.expires_at,
                "old_token_expires_at": old.expires_at,
            },
            status=201,
        )


class RevokeToken(ApiView):
    actions_required = tuple(ApiToken.Action.values)

    @extend_schema(request=None, responses={204: None, **_problems()}, summary="Revoke this token")
    def post(self, request: Request) -> Response:
        token = token_auth(request).token
        ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
        record("token.revoked", target=token, details={"prefix": token.prefix, "by": "itself"})
        return Response(status=status.HTTP_204_NO_CONTENT)
