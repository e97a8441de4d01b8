"""The index is rebuilt from the database: after a loss, and when the embedding model changes."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from ingest.embedding import bundled_model_path
from ingest.index import INDEX_SCHEMA_VERSION, AccessScope
from kb.answering.retrieval import search_passages
from kb.library.components import forget_embedders, get_embedder, get_index
from kb.library.indexing import (
    active_generation,
    chunk_texts,
    configured_model_differs,
    ensure_index,
    live_generations,
    rebuild_index,
    write_version,
)
from kb.library.ingestion import ingest_version
from kb.library.models import Chunk, Collection, DocumentVersion, IndexGeneration
from kb.library.services import upload_document
from tests.conftest import index_count
from tests.ingest.test_index_contract import create_dense_only_collection

pytestmark = pytest.mark.usefixtures("fresh_index")

POLICIES = {
    "travel.md": "# Travel\n\n## Hotels\n\nThe hotel limit is 180 EUR per night in Munich.\n\n"
    "## Trains\n\nTrains are booked in second class unless the trip exceeds four hours.\n",
    "invoices.md": "# Invoices\n\nInvoices above 50,000 EUR are approved by the CFO.\n\n"
    "## Payment\n\nSuppliers are paid within 30 days net.\n",
    "security.md": "# Security\n\nPasswords rotate every 90 days. Laptops use disk encryption.\n",
    "onboarding.md": "# Onboarding\n\nNew hires receive a laptop and a badge on day one.\n",
}
QUESTIONS = ["hotel limit", "who approves large invoices", "password rotation", "first day"]


@pytest.fixture
def loaded(finance_collection: Collection) -> AccessScope:
    for name, text in POLICIES.items():
        content = text.encode()
        version = upload_document(
            collection=finance_collection,
            name=name,
            stream=io.BytesIO(content),
            size=len(content),
            uploaded_by_id=None,
        ).version
        assert ingest_version(version.pk) == "indexed"
    return AccessScope(frozenset({finance_collection.pk}))


def top10(scope: AccessScope) -> list[list[int]]:
    return [[hit.chunk_id for hit in search_passages(q, scope)] for q in QUESTIONS]


def test_a_lost_index_is_rebuilt_with_the_same_counts_and_results(
    loaded: AccessScope, settings: object
) -> None:
    settings.RETRIEVAL_TOP_K = 10  # type: ignore[attr-defined]
    before = top10(loaded)
    chunks = Chunk.objects.count()
    old = active_generation()
    assert index_count() == chunks

    get_index().drop_collection(old.collection_name)  # the index is lost
    with pytest.raises(CommandError, match=f"{old.collection_name} is missing"):
        call_command("reindex", "--check", stdout=io.StringIO())

    out = io.StringIO()
    call_command("reindex", stdout=out, stderr=io.StringIO())
    new = active_generation()
    assert new.pk != old.pk and new.point_count == chunks == index_count()
    assert f"{chunks} points for {chunks} passages" in out.getvalue()
    assert top10(loaded) == before
    assert IndexGeneration.objects.get(pk=old.pk).state == "retired"
    call_command("reindex", "--check", stdout=out)
    assert "The index matches the database." in out.getvalue()


def test_a_new_embedding_model_builds_a_new_collection_and_switches_the_alias(
    loaded: AccessScope, settings: object, tmp_path: Path
) -> None:
    old = active_generation()
    index = get_index()
    assert index.alias_target("kb_chunks") == old.collection_name
    # A different model: the bundled one copied elsewhere, with its own name and revision.
    model = shutil.copytree(bundled_model_path(), tmp_path / "minilm-v2-local")
    settings.EMBEDDING_MODEL = str(model)  # type: ignore[attr-defined]
    forget_embedders()
    try:
        assert configured_model_differs()
        new = rebuild_index()
        assert new.model_id.startswith("minilm-v2-local@") and new.model_id != old.model_id
        assert index.alias_target("kb_chunks") == new.collection_name
        assert old.collection_name not in index.collection_names()  # no mixed vectors left
        assert index_count() == Chunk.objects.count()
        live = DocumentVersion.objects.filter(index_state="live")
        assert set(live.values_list("embedding_model", flat=True)) == {new.model_id}
        assert not configured_model_differs()
        assert "180 EUR" in Chunk.objects.get(pk=search_passages("hotel", loaded)[0].chunk_id).text
    finally:
        forget_embedders()


def test_an_index_from_before_hybrid_retrieval_is_rebuilt_once(loaded: AccessScope) -> None:
    # An upgraded installation: the served collection has dense vectors only (schema 1).
    old = active_generation()
    index = get_index()
    index.drop_collection(old.collection_name)
    create_dense_only_collection(index, old.collection_name, old.dimension)
    embedder = get_embedder(old.model_name)
    for version in DocumentVersion.objects.filter(index_state="live"):
        chunks = list(version.chunks.order_by("ordinal"))
        vectors = embedder.embed_documents(chunk_texts(version, chunks))
        write_version(version, chunks, {old.model_name: vectors}, [old])
    assert index.schema_version(old.collection_name) == 1
    [hit, *_] = search_passages("password rotation", loaded)  # it still serves, dense only
    assert hit.dense_score is not None and hit.lexical_score is None

    assert configured_model_differs()
    new = rebuild_index()
    assert new.pk != old.pk and new.model_id == old.model_id
    assert index.schema_version(new.collection_name) == INDEX_SCHEMA_VERSION
    assert index.alias_target("kb_chunks") == new.collection_name
    assert old.collection_name not in index.collection_names()
    assert index_count() == Chunk.objects.count()
    assert not configured_model_differs()  # once
    [hit, *_] = search_passages("password rotation", loaded)
    assert (
        hit.lexical_score is not None
        and "Passwords rotate" in Chunk.objects.get(pk=hit.chunk_id).text
    )


def test_an_install_indexed_with_minilm_moves_to_the_multilingual_model(
    loaded: AccessScope, settings: object
) -> None:
    # The real two models: MiniLM (the old default) to multilingual-e5-small. The old
    # generation answers until the new one is complete, then the alias switches in one step.
    old = active_generation()
    assert "all-MiniLM-L6-v2" in old.model_id
    settings.EMBEDDING_MODEL = "multilingual-e5-small"  # type: ignore[attr-defined]
    settings.RETRIEVAL_MODE = "dense"  # type: ignore[attr-defined]
    forget_embedders()
    try:
        assert configured_model_differs()
        assert active_generation().pk == old.pk  # nothing switched before the rebuild
        new = rebuild_index()
        assert new.model_id.startswith("intfloat/multilingual-e5-small@")
        assert new.dimension == 384 and new.pk != old.pk
        assert get_index().alias_target("kb_chunks") == new.collection_name
        assert old.collection_name not in get_index().collection_names()
        assert index_count() == Chunk.objects.count()
        live = DocumentVersion.objects.filter(index_state="live")
        assert set(live.values_list("embedding_model", flat=True)) == {new.model_id}
        # Dense retrieval alone now reads Chinese: "hotel limit in Munich" finds the English
        # passage through the multilingual model, not through shared words.
        top = search_passages("慕尼黑的酒店每晚限额是多少？", loaded)[0]
        assert "180 EUR" in Chunk.objects.get(pk=top.chunk_id).text
    finally:
        forget_embedders()


def test_documents_ingested_during_a_rebuild_reach_both_generations(
    loaded: AccessScope, finance_collection: Collection
) -> None:
    active = active_generation()
    building = IndexGeneration.objects.create(
        collection_name="kb_chunks__building",
        model_name=active.model_name,
        model_id=active.model_id,
        dimension=active.dimension,
    )
    get_index().create_collection(building.collection_name, building.dimension)
    assert [g.pk for g in live_generations()] == [active.pk, building.pk]
    content = b"# Parking\n\nParking is free on Fridays.\n"
    version = upload_document(
        collection=finance_collection,
        name="parking.md",
        stream=io.BytesIO(content),
        size=len(content),
        uploaded_by_id=None,
    ).version
    assert ingest_version(version.pk) == "indexed"
    for generation in (active, building):
        assert get_index().count(generation.collection_name, version_id=version.pk) == 1
    # The rebuild resumes the generation that is already building, and switches to it.
    assert rebuild_index().pk == building.pk
    assert index_count() == Chunk.objects.count()


def test_start_up_rebuilds_a_lost_index(loaded: AccessScope) -> None:
    lost = active_generation()
    get_index().drop_collection(lost.collection_name)
    rebuilt = ensure_index()
    assert rebuilt.pk != lost.pk and index_count() == Chunk.objects.count()
    assert get_index().alias_target("kb_chunks") == rebuilt.collection_name


def test_a_check_finds_points_that_do_not_belong(loaded: AccessScope) -> None:
    version = DocumentVersion.objects.filter(index_state="live").first()
    assert version is not None
    DocumentVersion.objects.filter(pk=version.pk).update(chunk_count=version.chunk_count + 1)
    with pytest.raises(CommandError, match="1 versions have missing or extra points"):
        call_command("reindex", "--check", stdout=io.StringIO())
