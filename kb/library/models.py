"""Collections, documents and chunks: the source of truth the vector index is rebuilt from."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from ingest.index import point_id_for_chunk
from kb.accounts.models import Department


class Collection(models.Model):
    class Visibility(models.TextChoices):
        DEPARTMENT = "department", "Own department only"
        COMPANY = "company", "Everyone in the company"

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="collections")
    visibility = models.CharField(
        max_length=20, choices=Visibility.choices, default=Visibility.DEPARTMENT
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["department", "name"], name="collection_name_per_dept")
        ]

    def __str__(self) -> str:
        return self.name


def _original_upload_path(instance: Document, filename: str) -> str:
    # Originals are stored under an opaque name: a user-chosen file name never becomes a path.
    return f"originals/{instance.collection_id}/{uuid.uuid4().hex}"


class Document(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        PARSING = "parsing", "Parsing"
        EMBEDDING = "embedding", "Embedding"
        INDEXED = "indexed", "Indexed"
        FAILED = "failed", "Failed"

    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="documents")
    title = models.CharField(max_length=300)
    original_name = models.CharField(max_length=300)
    original = models.FileField(upload_to=_original_upload_path, max_length=300)
    content_type = models.CharField(max_length=120, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    embedding_model = models.CharField(max_length=200, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    indexed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # The same bytes uploaded twice into one collection add nothing.
            models.UniqueConstraint(fields=["collection", "sha256"], name="one_copy_per_collection")
        ]

    def __str__(self) -> str:
        return self.title


class Chunk(models.Model):
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    ordinal = models.PositiveIntegerField()
    text = models.TextField()
    page = models.PositiveIntegerField(null=True, blank=True)
    section = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["document_id", "ordinal"]
        constraints = [
            models.UniqueConstraint(fields=["document", "ordinal"], name="one_chunk_per_ordinal")
        ]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.ordinal}"

    @property
    def point_id(self) -> str:
        return point_id_for_chunk(self.document_id, self.ordinal)
