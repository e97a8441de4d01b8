from django.contrib import admin

from kb.library.models import Collection, Document


@admin.register(Collection)
class CollectionAdmin(admin.ModelAdmin):
    list_display = ["name", "department", "visibility", "created_at"]
    list_filter = ["department", "visibility"]
    list_select_related = ["department"]


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = ["title", "collection", "status", "attempts", "created_at", "indexed_at"]
    list_filter = ["status", "collection"]
    list_select_related = ["collection"]
    readonly_fields = ["sha256", "error", "embedding_model", "attempts"]
