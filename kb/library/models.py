"""Collections, documents, their versions and chunks: the source of truth the index is rebuilt from.

A Document is a path inside a collection ("policies/travel.pdf"); each upload of new bytes at
that path is a DocumentVersion. Exactly one version is current (searchable) at a time; the
switch from one to the next is one database transaction, and the index hides every version
that is not current (`index_state`), so there is no moment where both or neither are found.
"""

from __future__ import annotations

import posixpath
import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from ingest.index import point_id_for_chunk
from kb.accounts.models import Clearance, Department
from kb.library.encryption import EncryptedTextField, originals_storage


class Collection(models.Model):
    """Who may read a collection: members of its department, of the departments it is shared
    with, or everyone (by `visibility`), each only if their membership is cleared to the
    collection's classification. Moving a collection or changing these fields takes effect on
    the next request: index queries filter on collection ids computed from these rows."""

    class Visibility(models.TextChoices):
        DEPARTMENT = "department", _("Own department only")
        SHARED = "shared", _("Shared with named departments")
        COMPANY = "company", _("Everyone in the company")

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="collections")
    visibility = models.CharField(
        max_length=20, choices=Visibility.choices, default=Visibility.DEPARTMENT
    )
    shared_with = models.ManyToManyField(Department, blank=True, related_name="shared_collections")
    classification = models.PositiveSmallIntegerField(
        choices=Clearance.choices, default=Clearance.INTERNAL
    )
    # Off: readers get answers and citations (the passages) but never the original file.
    allow_download = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["department", "name"], name="collection_name_per_dept")
        ]

    def __str__(self) -> str:
        return self.name


def _original_upload_path(instance: DocumentVersion, filename: str) -> str:
    # Originals are stored under an opaque name: a user-chosen file name never becomes a path.
    return f"originals/{instance.document.collection_id}/{uuid.uuid4().hex}"


class Document(models.Model):
    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="documents")
    # Where the file lives inside the collection: its name, under the folders of the archive
    # or directory it came from. A new upload at the same path is a new version.
    path = models.CharField(max_length=500)
    title = models.CharField(max_length=300)
    current_version = models.OneToOneField(
        "DocumentVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["path"]
        constraints = [
            models.UniqueConstraint(fields=["collection", "path"], name="one_document_per_path")
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def folder(self) -> str:
        return posixpath.dirname(self.path)

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)


class DocumentVersion(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        PARSING = "parsing", _("Parsing")
        EMBEDDING = "embedding", _("Embedding")
        INDEXED = "indexed", _("Indexed")
        FAILED = "failed", _("Failed")
        QUARANTINED = "quarantined", _("Quarantined")
        SUPERSEDED = "superseded", _("Replaced by a newer version")

    class IndexState(models.TextChoices):
        # Whether this version has points in the index, and whether searches may see them.
        NONE = "none", _("No points")
        HIDDEN = "hidden", _("Points present, excluded from searches")
        LIVE = "live", _("Searchable")

    IN_PROGRESS = (Status.QUEUED, Status.PARSING, Status.EMBEDDING)
    FINAL = (Status.INDEXED, Status.FAILED, Status.QUARANTINED, Status.SUPERSEDED)

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    # Stored encrypted (kb/library/encryption.py); opening it gives the plaintext.
    original = models.FileField(
        upload_to=_original_upload_path, storage=originals_storage, max_length=300
    )
    original_name = models.CharField(max_length=300)
    size_bytes = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, db_index=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    progress = models.PositiveSmallIntegerField(default=0)  # percent
    error_code = models.CharField(max_length=40, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # Which worker holds the claim, and when it last showed progress: a claim whose worker
    # has gone quiet is recovered (kb/library/ingestion.py, recover_stalled_versions).
    claimed_by = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Set once the task message reached the broker; unset means it must be sent again.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    index_state = models.CharField(
        max_length=10, choices=IndexState.choices, default=IndexState.NONE, db_index=True
    )
    # When a replaced or failed version's points became hidden: they are purged after a grace
    # period, so a search already on its way still finds the document.
    hidden_at = models.DateTimeField(null=True, blank=True)

    page_count = models.PositiveIntegerField(null=True, blank=True)
    ocr_pages = models.PositiveIntegerField(default=0)
    chunk_count = models.PositiveIntegerField(default=0)
    embedding_model = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    parse_seconds = models.FloatField(null=True, blank=True)
    embed_seconds = models.FloatField(null=True, blank=True)
    index_seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["document_id", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["document", "number"], name="one_version_number")
        ]

    def __str__(self) -> str:
        return f"{self.document_id} v{self.number}"

    @property
    def is_busy(self) -> bool:
        return self.status in self.IN_PROGRESS

    @property
    def total_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class Chunk(models.Model):
    version = models.ForeignKey(DocumentVersion, on_delete=models.CASCADE, related_name="chunks")
    # Denormalised from the version: access checks and citations start from the document.
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    ordinal = models.PositiveIntegerField()
    # Encrypted in the database; nothing may search it in SQL (see EncryptedTextField).
    text = EncryptedTextField()
    page = models.PositiveIntegerField(null=True, blank=True)
    section_title = models.CharField(max_length=300, blank=True)
    section_path = models.CharField(max_length=1000, blank=True)
    kind = models.CharField(max_length=10, default="text")  # "text" or "table"
    tokens = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["version_id", "ordinal"]
        constraints = [
            models.UniqueConstraint(fields=["version", "ordinal"], name="one_chunk_per_ordinal")
        ]

    def __str__(self) -> str:
        return f"{self.version_id}#{self.ordinal}"

    @property
    def point_id(self) -> str:
        return point_id_for_chunk(self.version_id, self.ordinal)


class IndexGeneration(models.Model):
    """One index collection, filled with the vectors of one embedding model.

    Exactly one generation is active (served); a rebuild or a model change fills a new one
    while the active one keeps serving, then switches in one transaction plus the alias.
    """

    class State(models.TextChoices):
        BUILDING = "building", _("Building")
        ACTIVE = "active", _("Active")
        RETIRED = "retired", _("Retired")

    collection_name = models.CharField(max_length=200, unique=True)
    # The EMBEDDING_MODEL setting it was built with ("" = the bundled model) and the
    # model's name@revision.
    model_name = models.CharField(max_length=500, blank=True)
    model_id = models.CharField(max_length=300)
    dimension = models.PositiveIntegerField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.BUILDING)
    point_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["state"],
                condition=models.Q(state="active"),
                name="one_active_index_generation",
            )
        ]

    def __str__(self) -> str:
        return f"{self.collection_name} ({self.state}, {self.model_id})"
