from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from kb.accounts.access import readable_collection_ids
from kb.library.models import Collection, Document, DocumentVersion, IndexGeneration


@admin.register(Collection)
class CollectionAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "department",
        "visibility",
        "classification",
        "allow_download",
        "created_at",
    ]
    list_filter = ["department", "visibility", "classification"]
    list_select_related = ["department"]
    filter_horizontal = ["shared_with"]


class VersionInline(admin.TabularInline):
    model = DocumentVersion
    fields = ("number", "original_name", "status", "error_code", "attempts", "chunk_count")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


class ReadableOnly:
    """Admin lists of documents show only what the superadmin could read in the portal:
    the admin role manages structure, it is not a way around department boundaries."""

    collection_lookup = "collection_id__in"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset: QuerySet = super().get_queryset(request)  # type: ignore[misc]  # ModelAdmin.get_queryset is untyped in the stubs
        allowed = readable_collection_ids(request.user)
        return queryset.filter(**{self.collection_lookup: allowed})


@admin.register(Document)
class DocumentAdmin(ReadableOnly, admin.ModelAdmin):
    list_display = ["title", "path", "collection", "current_version", "updated_at"]
    list_filter = ["collection"]
    list_select_related = ["collection", "current_version"]
    search_fields = ["title", "path"]
    readonly_fields = ["current_version"]
    inlines = [VersionInline]


@admin.register(DocumentVersion)
class DocumentVersionAdmin(ReadableOnly, admin.ModelAdmin):
    collection_lookup = "document__collection_id__in"

    list_display = ["document", "number", "status", "error_code", "progress", "attempts"]
    list_filter = ["status", "error_code", "index_state"]
    list_select_related = ["document"]
    readonly_fields = [
        "sha256",
        "status",
        "index_state",
        "error_code",
        "error",
        "attempts",
        "claimed_by",
        "heartbeat_at",
        "embedding_model",
        "parse_seconds",
        "embed_seconds",
        "index_seconds",
    ]


@admin.register(IndexGeneration)
class IndexGenerationAdmin(admin.ModelAdmin):
    list_display = ["collection_name", "state", "model_id", "point_count", "activated_at"]
    readonly_fields = [f.name for f in IndexGeneration._meta.fields]

    def has_add_permission(self, request: object) -> bool:
        return False
