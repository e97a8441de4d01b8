"""Documents get versions; chunks belong to a version; index generations are recorded.

Schema first (additive), then every existing document becomes version 1 of itself, then the
columns that moved to the version are dropped. The vector index is rebuilt from the database
on the next start (kb/library/indexing.py), because point ids and payloads changed.
"""

import posixpath

import django.db.models.deletion
import kb.library.models
from django.conf import settings
from django.db import migrations, models

STATUS_MAP = {"indexed": "indexed", "failed": "failed"}


def documents_to_versions(apps, schema_editor):
    Document = apps.get_model("library", "Document")
    DocumentVersion = apps.get_model("library", "DocumentVersion")
    Chunk = apps.get_model("library", "Chunk")
    used_paths = set()
    for document in Document.objects.order_by("id").iterator():
        path = document.original_name or f"document-{document.pk}"
        stem, extension = posixpath.splitext(path)
        candidate, n = path, 2
        while (document.collection_id, candidate) in used_paths:
            candidate, n = f"{stem} ({n}){extension}", n + 1
        used_paths.add((document.collection_id, candidate))
        status = STATUS_MAP.get(document.status, "queued")
        indexed = status == "indexed"
        version = DocumentVersion.objects.create(
            document_id=document.pk,
            number=1,
            original=document.original.name,
            original_name=document.original_name,
            size_bytes=document.size_bytes,
            sha256=document.sha256,
            uploaded_by_id=document.uploaded_by_id,
            status=status,
            progress=100 if indexed else 0,
            error_code="parse_error" if status == "failed" else "",
            error=document.error,
            attempts=document.attempts,
            index_state="live" if indexed else "none",
            embedding_model=document.embedding_model,
            finished_at=document.indexed_at,
        )
        DocumentVersion.objects.filter(pk=version.pk).update(created_at=document.created_at)
        chunks = Chunk.objects.filter(document_id=document.pk)
        for chunk in chunks.iterator():
            parts = [p for p in chunk.section.split(" > ") if p]
            chunk.version_id = version.pk
            chunk.section_path = chunk.section
            chunk.section_title = parts[-1][:300] if parts else ""
            chunk.save(update_fields=["version", "section_path", "section_title"])
        Document.objects.filter(pk=document.pk).update(
            path=candidate,
            current_version_id=version.pk if indexed else None,
        )
        DocumentVersion.objects.filter(pk=version.pk).update(chunk_count=chunks.count())


class Migration(migrations.Migration):
    dependencies = [
        ("library", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="DocumentVersion",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("number", models.PositiveIntegerField()),
                ("original", models.FileField(max_length=300, upload_to=kb.library.models._original_upload_path)),
                ("original_name", models.CharField(max_length=300)),
                ("size_bytes", models.BigIntegerField(default=0)),
                ("sha256", models.CharField(db_index=True, max_length=64)),
                ("status", models.CharField(choices=[("queued", "Queued"), ("parsing", "Parsing"), ("embedding", "Embedding"), ("indexed", "Indexed"), ("failed", "Failed"), ("quarantined", "Quarantined"), ("superseded", "Replaced by a newer version")], db_index=True, default="queued", max_length=20)),
                ("progress", models.PositiveSmallIntegerField(default=0)),
                ("error_code", models.CharField(blank=True, max_length=40)),
                ("error", models.TextField(blank=True)),
                ("attempts", models.PositiveIntegerField(default=0)),
                ("claimed_by", models.CharField(blank=True, max_length=200)),
                ("heartbeat_at", models.DateTimeField(blank=True, null=True)),
                ("enqueued_at", models.DateTimeField(blank=True, null=True)),
                ("index_state", models.CharField(choices=[("none", "No points"), ("hidden", "Points present, excluded from searches"), ("live", "Searchable")], db_index=True, default="none", max_length=10)),
                ("hidden_at", models.DateTimeField(blank=True, null=True)),
                ("page_count", models.PositiveIntegerField(blank=True, null=True)),
                ("ocr_pages", models.PositiveIntegerField(default=0)),
                ("chunk_count", models.PositiveIntegerField(default=0)),
                ("embedding_model", models.CharField(blank=True, max_length=300)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                ("parse_seconds", models.FloatField(blank=True, null=True)),
                ("embed_seconds", models.FloatField(blank=True, null=True)),
                ("index_seconds", models.FloatField(blank=True, null=True)),
                ("document", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="versions", to="library.document")),
                ("uploaded_by", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to=settings.AUTH_USER_MODEL)),
            ],
            options={"ordering": ["document_id", "-number"]},
        ),
        migrations.AddConstraint(
            model_name="documentversion",
            constraint=models.UniqueConstraint(fields=("document", "number"), name="one_version_number"),
        ),
        migrations.CreateModel(
            name="IndexGeneration",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("collection_name", models.CharField(max_length=200, unique=True)),
                ("model_name", models.CharField(blank=True, max_length=500)),
                ("model_id", models.CharField(max_length=300)),
                ("dimension", models.PositiveIntegerField()),
                ("state", models.CharField(choices=[("building", "Building"), ("active", "Active"), ("retired", "Retired")], default="building", max_length=10)),
                ("point_count", models.PositiveIntegerField(default=0)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("activated_at", models.DateTimeField(blank=True, null=True)),
                ("retired_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={"ordering": ["-id"]},
        ),
        migrations.AddConstraint(
            model_name="indexgeneration",
            constraint=models.UniqueConstraint(condition=models.Q(("state", "active")), fields=("state",), name="one_active_index_generation"),
        ),
        migrations.RemoveConstraint(model_name="document", name="one_copy_per_collection"),
        migrations.RemoveConstraint(model_name="chunk", name="one_chunk_per_ordinal"),
        migrations.AddField(model_name="document", name="path", field=models.CharField(default="", max_length=500), preserve_default=False),
        migrations.AddField(
            model_name="document",
            name="current_version",
            field=models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to="library.documentversion"),
        ),
        migrations.AddField(model_name="chunk", name="version", field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.CASCADE, related_name="chunks", to="library.documentversion")),
        migrations.AddField(model_name="chunk", name="section_title", field=models.CharField(blank=True, max_length=300)),
        migrations.AddField(model_name="chunk", name="section_path", field=models.CharField(blank=True, max_length=1000)),
        migrations.AddField(model_name="chunk", name="kind", field=models.CharField(default="text", max_length=10)),
        migrations.AddField(model_name="chunk", name="tokens", field=models.PositiveIntegerField(default=0)),
        migrations.RunPython(documents_to_versions, migrations.RunPython.noop),
        migrations.AlterField(model_name="chunk", name="version", field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="chunks", to="library.documentversion")),
        migrations.RemoveField(model_name="chunk", name="section"),
        migrations.AlterModelOptions(name="chunk", options={"ordering": ["version_id", "ordinal"]}),
        migrations.AlterModelOptions(name="document", options={"ordering": ["path"]}),
        migrations.AddConstraint(model_name="chunk", constraint=models.UniqueConstraint(fields=("version", "ordinal"), name="one_chunk_per_ordinal")),
        migrations.AddConstraint(model_name="document", constraint=models.UniqueConstraint(fields=("collection", "path"), name="one_document_per_path")),
        migrations.RemoveField(model_name="document", name="original"),
        migrations.RemoveField(model_name="document", name="original_name"),
        migrations.RemoveField(model_name="document", name="content_type"),
        migrations.RemoveField(model_name="document", name="size_bytes"),
        migrations.RemoveField(model_name="document", name="sha256"),
        migrations.RemoveField(model_name="document", name="status"),
        migrations.RemoveField(model_name="document", name="error"),
        migrations.RemoveField(model_name="document", name="attempts"),
        migrations.RemoveField(model_name="document", name="embedding_model"),
        migrations.RemoveField(model_name="document", name="uploaded_by"),
        migrations.RemoveField(model_name="document", name="indexed_at"),
    ]
