"""One contract, two adapters: Qdrant Edge (embedded) and Qdrant server via qdrant-client.

The server adapter runs against qdrant-client's local mode, which serves the same client API
in-process; no Qdrant server can run on the CI machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from ingest.index import AccessScope, IndexPoint, UnscopedQueryError, point_id_for_chunk
from ingest.index.base import VectorIndex
from ingest.index.qdrant_edge import QdrantEdgeIndex
from ingest.index.qdrant_server import QdrantServerIndex

DIM = 4


@pytest.fixture(params=["qdrant-edge", "qdrant-server"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorIndex]:
    adapter: VectorIndex
    if request.param == "qdrant-edge":
        adapter = QdrantEdgeIndex(tmp_path / "edge")
    else:
        adapter = QdrantServerIndex(QdrantClient(path=str(tmp_path / "local")), "kb_test")
    adapter.ensure_ready(DIM)
    adapter.ensure_ready(DIM)  # idempotent
    yield adapter
    adapter.close()


def point(document_id: int, ordinal: int, collection_id: int, vector: list[float]) -> IndexPoint:
    return IndexPoint(
        point_id=point_id_for_chunk(document_id, ordinal),
        vector=vector,
        chunk_id=document_id * 100 + ordinal,
        document_id=document_id,
        collection_id=collection_id,
        department_id=collection_id * 10,
    )


@pytest.fixture
def loaded(index: VectorIndex) -> VectorIndex:
    index.upsert(
        [
            point(1, 0, collection_id=1, vector=[1.0, 0.0, 0.0, 0.0]),
            point(1, 1, collection_id=1, vector=[0.9, 0.1, 0.0, 0.0]),
            point(2, 0, collection_id=2, vector=[1.0, 0.0, 0.0, 0.01]),
            point(3, 0, collection_id=3, vector=[0.0, 0.0, 1.0, 0.0]),
        ]
    )
    return index


def test_search_returns_only_points_inside_the_scope(loaded: VectorIndex) -> None:
    hits = loaded.search([1.0, 0.0, 0.0, 0.0], AccessScope(frozenset({1})), limit=10)
    assert {h.collection_id for h in hits} == {1}
    assert [h.chunk_id for h in hits] == [100, 101]  # best first
    both = loaded.search([1.0, 0.0, 0.0, 0.0], AccessScope(frozenset({1, 2})), limit=10)
    assert {h.collection_id for h in both} == {1, 2}


def test_the_scope_is_applied_inside_the_query_not_after(loaded: VectorIndex) -> None:
    # With limit=1, a post-filter would take the global best (collection 1 or 2) and then
    # drop it, returning nothing; a filter inside the query returns collection 3's point.
    hits = loaded.search([1.0, 0.0, 0.0, 0.0], AccessScope(frozenset({3})), limit=1)
    assert [h.chunk_id for h in hits] == [300]


def test_search_without_a_scope_is_refused(loaded: VectorIndex) -> None:
    with pytest.raises(UnscopedQueryError):
        loaded.search([1.0, 0.0, 0.0, 0.0], None, limit=5)  # type: ignore[arg-type]
    with pytest.raises(UnscopedQueryError):
        loaded.search([1.0, 0.0, 0.0, 0.0], {"collection_ids": [1]}, limit=5)  # type: ignore[arg-type]


def test_an_empty_scope_finds_nothing(loaded: VectorIndex) -> None:
    assert loaded.search([1.0, 0.0, 0.0, 0.0], AccessScope(frozenset()), limit=5) == []


def test_min_score_drops_weak_matches(loaded: VectorIndex) -> None:
    hits = loaded.search([0.0, 0.0, 1.0, 0.0], AccessScope(frozenset({1, 3})), 10, min_score=0.5)
    assert [h.chunk_id for h in hits] == [300]


def test_upserting_the_same_ids_again_adds_nothing(loaded: VectorIndex) -> None:
    before = loaded.count()
    loaded.upsert([point(1, 0, collection_id=1, vector=[0.0, 1.0, 0.0, 0.0])])
    assert loaded.count() == before == 4
    hits = loaded.search([0.0, 1.0, 0.0, 0.0], AccessScope(frozenset({1})), limit=1)
    assert hits[0].chunk_id == 100  # the vector was replaced


def test_delete_document_removes_only_its_points(loaded: VectorIndex) -> None:
    loaded.delete_document(1)
    assert loaded.count(document_id=1) == 0
    assert loaded.count(document_id=2) == 1
    assert loaded.count() == 2


def test_point_ids_are_deterministic() -> None:
    assert point_id_for_chunk(7, 3) == point_id_for_chunk(7, 3)
    assert point_id_for_chunk(7, 3) != point_id_for_chunk(3, 7)
