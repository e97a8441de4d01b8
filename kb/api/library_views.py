"""REST API v1, the library: collections, uploads, documents and their originals. Reading goes
through the same acts as the portal (kb/answering/documents.py) over the token's Reader."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, QuerySet
from django.http.response import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from kb.accounts.access import can_upload_to, curated_departments
from kb.answering.documents import download_document, readable_collection, readable_document
from kb.api import serializers as s
from kb.api.base import READ_ACTIONS, ApiView, TokenAllows, count_use, reader
from kb.api.idempotency import idempotent
from kb.api.models import ApiToken
from kb.api.openapi import IDEMPOTENCY_KEY, list_problems, path_id, problems
from kb.api.problems import ProblemResponse
from kb.api.scope import collection_ids, token_auth
from kb.audit.trail import denied
from kb.library.attachments import attachment
from kb.library.models import Collection, Document
from kb.library.services import BatchResult, UploadRejected, delete_document, upload_any
from kb.library.upload_names import refuse_overlong_names


def _readable_collections(request: Request) -> QuerySet[Collection]:
    return Collection.objects.filter(pk__in=collection_ids(request))


def _require_curator(request: Request, collection: Collection) -> None:
    if not token_auth(request).token.allows(ApiToken.Action.INGEST):
        denied(collection, reason="token lacks the ingest action")
        raise PermissionDenied("This token may not change collections or documents (ingest).")
    if not can_upload_to(request.user, collection):
        denied(collection, reason="not a curator of this collection")
        raise PermissionDenied("Only curators of the collection's department may change it.")


class CollectionList(generics.ListCreateAPIView[Collection]):
    permission_classes = [TokenAllows]
    actions_required = READ_ACTIONS
    serializer_class = s.CollectionSerializer

    def get_queryset(self) -> QuerySet[Collection]:
        return _readable_collections(self.request).annotate(document_count=Count("documents"))

    @extend_schema(responses={200: s.CollectionSerializer(many=True), **list_problems()})
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(responses={201: s.CollectionSerializer, **problems()})
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


@extend_schema(parameters=[path_id("collection_id")])
class CollectionDetail(generics.RetrieveUpdateDestroyAPIView[Collection]):
    permission_classes = [TokenAllows]
    actions_required = READ_ACTIONS
    serializer_class = s.CollectionSerializer
    http_method_names = ["get", "patch", "delete", "head", "options"]

    def get_object(self) -> Collection:
        collection = readable_collection(reader(self.request), int(self.kwargs["collection_id"]))
        collection.document_count = collection.documents.count()  # type: ignore[attr-defined]  # the annotation the list view adds, filled by hand for one object
        return collection

    @extend_schema(responses={200: s.CollectionSerializer, **problems(404)})
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(responses={200: s.CollectionSerializer, **problems(404)})
    def patch(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().patch(request, *args, **kwargs)

    @extend_schema(responses={204: None, **problems(404)})
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


@extend_schema(parameters=[path_id("collection_id")])
class CollectionDocuments(generics.ListAPIView[Document]):
    permission_classes = [TokenAllows]
    actions_required = READ_ACTIONS
    serializer_class = s.DocumentSerializer
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    def get_queryset(self) -> QuerySet[Document]:
        collection = readable_collection(reader(self.request), int(self.kwargs["collection_id"]))
        return collection.documents.select_related("current_version").prefetch_related("versions")

    @extend_schema(responses={200: s.DocumentSerializer(many=True), **list_problems(404)})
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request={"multipart/form-data": s.UploadRequestSerializer},
        parameters=[IDEMPOTENCY_KEY],
        responses={
            201: s.UploadResponseSerializer,
            200: OpenApiResponse(s.UploadResponseSerializer, description="Nothing new (duplicate)"),
            **problems(404, 409, 413, 415, 422),
        },
        summary="Upload a document (or a zip of them) into the collection",
        description="Send `Idempotency-Key` so that a retried upload adds nothing twice.",
    )
    @idempotent
    def post(self, request: Request, collection_id: int) -> Response:
        collection = readable_collection(reader(request), collection_id)
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


@extend_schema(parameters=[path_id("document_id")])
class DocumentDetail(ApiView):
    actions_required = READ_ACTIONS

    @extend_schema(responses={200: s.DocumentSerializer, **problems(404)})
    def get(self, request: Request, document_id: int) -> Response:
        document = readable_document(reader(request), document_id, "view")
        return Response(s.DocumentSerializer(document).data)

    @extend_schema(responses={204: None, **problems(404)})
    def delete(self, request: Request, document_id: int) -> Response:
        document = readable_document(reader(request), document_id, "manage")
        _require_curator(request, document.collection)
        delete_document(document.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(parameters=[path_id("document_id")])
class DocumentDownload(ApiView):
    actions_required = READ_ACTIONS

    @extend_schema(
        parameters=[OpenApiParameter("version", int, required=False)],
        responses={
            (200, "application/octet-stream"): OpenApiTypes.BINARY,
            **problems(404),
        },
        summary="The original file, where the collection allows downloads",
    )
    def get(self, request: Request, document_id: int) -> HttpResponseBase:
        version = request.query_params.get("version")
        chosen = download_document(reader(request), document_id, version)
        return attachment(chosen.original.open("rb"), chosen.original_name)
