"""Request and response shapes of the API; the OpenAPI schema is generated from these."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from rest_framework import serializers

from kb.accounts.models import Clearance, Department
from kb.library.models import Collection, Document, DocumentVersion


class ProblemSerializer(serializers.Serializer[Any]):
    type = serializers.CharField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    instance = serializers.CharField(required=False)
    errors = serializers.DictField(required=False)  # type: ignore[assignment]  # a problem's errors are a dict, where the base declares a list
    retry_after = serializers.IntegerField(required=False)


class SearchRequestSerializer(serializers.Serializer[Any]):
    query = serializers.CharField(max_length=2000, trim_whitespace=True)


class RoundedFloat(serializers.FloatField):
    """A float sent rounded: scores and seconds carry no false precision."""

    def __init__(self, digits: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.digits = digits

    def to_representation(self, value: Any) -> float:  # type: ignore[override]  # the stubs declare str for every field; a FloatField returns a float
        return round(float(value), self.digits)


class DocumentUrl(serializers.CharField):
    """The API resource of the document a passage comes from."""

    def to_representation(self, value: Any) -> str:
        return reverse("api:document", args=[value])


class PassageSerializer(serializers.Serializer[Any]):
    """Renders a passage (inference.answering.Source) as answers and searches return it."""

    number = serializers.IntegerField(help_text="The [n] an answer cites it by.")
    chunk_id = serializers.IntegerField()
    document_id = serializers.IntegerField()
    title = serializers.CharField()
    page = serializers.IntegerField(allow_null=True)
    section = serializers.CharField(allow_blank=True)
    text = serializers.CharField()
    score = RoundedFloat(5)
    url = DocumentUrl(source="document_id", help_text="The document's API resource.")


class SearchResponseSerializer(serializers.Serializer[Any]):
    query = serializers.CharField()
    passages = PassageSerializer(many=True)


class AskRequestSerializer(serializers.Serializer[Any]):
    question = serializers.CharField(max_length=2000, trim_whitespace=True)
    conversation = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=2**62
    )
    stream = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Server-sent events (sources, answer pieces, done) instead of one JSON body.",
    )


class AnswerSerializer(serializers.Serializer[Any]):
    """Renders an answer (kb.answering.answers.Answer): the JSON body, and a stream's `done`."""

    question = serializers.CharField()
    answer = serializers.CharField(source="text", allow_blank=True)
    mode = serializers.ChoiceField(choices=["generated", "extractive", "not_found"])
    notice = serializers.CharField(allow_blank=True)
    cited = serializers.ListField(child=serializers.IntegerField())
    sources = PassageSerializer(many=True)
    model = serializers.CharField(allow_blank=True)
    model_version = serializers.CharField(allow_blank=True)
    seconds = RoundedFloat(3)
    conversation = serializers.IntegerField(source="conversation_id", allow_null=True)
    turn = serializers.IntegerField(source="turn_id", allow_null=True)


class CollectionSerializer(serializers.ModelSerializer[Collection]):
    department = serializers.PrimaryKeyRelatedField(queryset=Department.objects.all())
    shared_with = serializers.PrimaryKeyRelatedField(
        queryset=Department.objects.all(), many=True, required=False
    )
    classification = serializers.ChoiceField(choices=Clearance.choices, required=False)
    document_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Collection
        fields = [
            "id",
            "name",
            "description",
            "department",
            "visibility",
            "shared_with",
            "classification",
            "allow_download",
            "document_count",
            "created_at",
        ]
        read_only_fields = ["id", "created_at", "document_count"]


class VersionSerializer(serializers.ModelSerializer[DocumentVersion]):
    class Meta:
        model = DocumentVersion
        fields = [
            "number",
            "status",
            "progress",
            "error_code",
            "error",
            "original_name",
            "size_bytes",
            "sha256",
            "page_count",
            "chunk_count",
            "created_at",
            "finished_at",
        ]


class DocumentSerializer(serializers.ModelSerializer[Document]):
    status = serializers.SerializerMethodField()
    current_version = serializers.SerializerMethodField()
    versions = VersionSerializer(many=True, read_only=True)

    class Meta:
        model = Document
        fields = [
            "id",
            "collection",
            "path",
            "title",
            "status",
            "current_version",
            "versions",
            "created_at",
            "updated_at",
        ]

    def get_status(self, document: Document) -> str:
        latest = max(document.versions.all(), key=lambda v: v.number, default=None)
        return latest.status if latest else "deleted"

    def get_current_version(self, document: Document) -> int | None:
        version = document.current_version
        return version.number if version else None


class UploadRequestSerializer(serializers.Serializer[Any]):
    file = serializers.FileField(help_text="The document, or a zip archive of documents.")
    path = serializers.CharField(
        required=False,
        max_length=500,
        help_text="Where it lives in the collection; a new file at an existing path is a new "
        "version. Defaults to the file name.",
    )


class UploadResultSerializer(serializers.Serializer[Any]):
    document = serializers.IntegerField()
    path = serializers.CharField()
    version = serializers.IntegerField()
    status = serializers.CharField()
    outcome = serializers.ChoiceField(choices=["created", "new_version", "duplicate", "retried"])


class RefusedFileSerializer(serializers.Serializer[Any]):
    path = serializers.CharField()
    reason = serializers.CharField()


class UploadResponseSerializer(serializers.Serializer[Any]):
    results = UploadResultSerializer(many=True)
    refused = RefusedFileSerializer(many=True)


class WithheldAnswer(serializers.CharField):
    """A turn's answer, or null where the reader can no longer read its sources."""

    def get_attribute(self, instance: Any) -> Any:
        return None if instance.withheld else instance.turn.answer


class TurnSerializer(serializers.Serializer[Any]):
    """Renders a turn as history shows it (kb.answering.conversations.TurnView)."""

    id = serializers.IntegerField(source="turn.pk")
    question = serializers.CharField(source="turn.question")
    answer = WithheldAnswer(allow_blank=True, allow_null=True)
    withheld = serializers.BooleanField(
        help_text="The answer drew on documents the acting user can no longer read."
    )
    mode = serializers.CharField(source="turn.mode")
    model = serializers.CharField(source="turn.model", allow_blank=True)
    created_at = serializers.DateTimeField(source="turn.created_at")


class ConversationSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    title = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class ConversationDetailSerializer(ConversationSerializer):
    turns = TurnSerializer(many=True)


class UsageSerializer(serializers.Serializer[Any]):
    day = serializers.DateField()
    action = serializers.CharField()
    requests = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()


class UsageResponseSerializer(serializers.Serializer[Any]):
    token = serializers.CharField()
    usage = UsageSerializer(many=True)


class AuditRecordSerializer(serializers.Serializer[Any]):
    seq = serializers.IntegerField()
    at = serializers.DateTimeField()
    action = serializers.CharField()
    outcome = serializers.CharField()
    actor_id = serializers.IntegerField(allow_null=True)
    actor = serializers.CharField(allow_blank=True)
    department_id = serializers.IntegerField(allow_null=True)
    department = serializers.CharField(allow_blank=True)
    ip = serializers.CharField(allow_blank=True)
    request_id = serializers.CharField(allow_blank=True)
    target_type = serializers.CharField(allow_blank=True)
    target_id = serializers.CharField(allow_blank=True)
    document_ids = serializers.ListField(child=serializers.IntegerField())
    details = serializers.DictField()
    prev_hash = serializers.CharField()
    hash = serializers.CharField()


class RotateRequestSerializer(serializers.Serializer[Any]):
    grace_hours = serializers.IntegerField(
        required=False,
        default=24,
        min_value=0,
        max_value=24 * 30,
        help_text="How long the old token keeps working.",
    )


class NewTokenSerializer(serializers.Serializer[Any]):
    token = serializers.CharField(help_text="Shown this once; only a hash is stored.")
    prefix = serializers.CharField()
    expires_at = serializers.DateTimeField(allow_null=True)
    old_token_expires_at = serializers.DateTimeField(allow_null=True)
