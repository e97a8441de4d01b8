"""One contract, two adapters: Qdrant Edge (embedded) and Qdrant server via qdrant-client.

The server adapter runs against qdrant-client's local mode, which serves the same client API
in-process; no Qdrant server can run on the CI machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from ingest.index import (
    AccessScope,
    IndexPoint,
    MissingCollection,
    UnscopedQueryError,
    point_id_for_chunk,
)
from ingest.index.base import VectorIndex
from ingest.index.qdrant_edge import QdrantEdgeIndex
from ingest.index.qdrant_server import QdrantServerIndex

DIM = 4
C = "kb_test__g1"


@pytest.fixture(params=["qdrant-edge", "qdrant-server"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorIndex]:
    adapter: VectorIndex
    if request.param == "qdrant-edge":
        adapter = QdrantEdgeIndex(tmp_path / "edge")
    else:
        adapter = QdrantServerIndex(QdrantClient(path=str(tmp_path / "local")))
    adapter.create_collection(C, DIM)
    adapter.create_collection(C, DIM)  # idempotent
    yield adapter
    adapter.close()


def point(
    document_id: int, ordinal: int, collection_id: int, vector: list[float], version_id: int = 0
) -> IndexPoint:
    version_id = version_id or document_id * 10
    return IndexPoint(
        point_id=point_id_for_chunk(version_id, ordinal),
        vector=vector,
        chunk_id=document_id * 100 + ordinal,
        document_id=document_id,
        version_id=version_id,
        collection_id=collection_id,
        department_id=collection_id * 10,
    )


@pytest.fixture
def loaded(index: VectorIndex) -> VectorIndex:
    index.upsert(
        C,
        [
            point(1, 0, collection_id=1, vector=[1.0, 0.0, 0.0, 0.0]),
            point(1, 1, collection_id=1, vector=[0.9, 0.1, 0.0, 0.0]),
            point(2, 0, collection_id=2, vector=[1.0, 0.0, 0.0, 0.01]),
            point(3, 0, collection_id=3, vector=[0.0, 0.0, 1.0, 0.0]),
        ],
    )
    return index


def scope(*ids: int) -> AccessScope:
    return AccessScope(frozenset(ids))


def test_search_returns_only_points_inside_the_scope(loaded: VectorIndex) -> None:
    hits = loaded.search(C, [1.0, 0.0, 0.0, 0.0], scope(1), limit=10)
    assert {h.collection_id for h in hits} == {1}
    assert [h.chunk_id for h in hits] == [100, 101]  # best first
    assert {h.version_id for h in hits} == {10}
    both = loaded.search(C, [1.0, 0.0, 0.0, 0.0], scope(1, 2), limit=10)
    assert {h.collection_id for h in both} == {1, 2}


def test_the_scope_is_applied_inside_the_query_not_after(loaded: VectorIndex) -> None:
    # With limit=1, a post-filter would take the global best (collection 1 or 2) and then
    # drop it, returning nothing; a filter inside the query returns collection 3's point.
    hits = loaded.search(C, [1.0, 0.0, 0.0, 0.0], scope(3), limit=1)
    assert [h.chunk_id for h in hits] == [300]


def test_excluded_versions_are_invisible_inside_the_query(loaded: VectorIndex) -> None:
    # Same limit=1 argument: version 10 holds the best match, excluding it must surface the
    # next point of the scope rather than an empty result.
    hits = loaded.search(
        C, [1.0, 0.0, 0.0, 0.0], scope(1, 2), 1, exclude_version_ids=frozenset({10})
    )
    assert [h.version_id for h in hits] == [20]


def test_search_without_a_scope_is_refused(loaded: VectorIndex) -> None:
    with pytest.raises(UnscopedQueryError):
        loaded.search(C, [1.0, 0.0, 0.0, 0.0], None, limit=5)  # type: ignore[arg-type]
    with pytest.raises(UnscopedQueryError):
        loaded.search(C, [1.0, 0.0, 0.0, 0.0], {"collection_ids": [1]}, limit=5)  # type: ignore[arg-type]


def test_an_empty_scope_finds_nothing(loaded: VectorIndex) -> None:
    assert loaded.search(C, [1.0, 0.0, 0.0, 0.0], scope(), limit=5) == []


def test_min_score_drops_weak_matches(loaded: VectorIndex) -> None:
    hits = loaded.search(C, [0.0, 0.0, 1.0, 0.0], scope(1, 3), 10, min_score=0.5)
    assert [h.chunk_id for h in hits] == [300]


def test_upserting_the_same_ids_again_adds_nothing(loaded: VectorIndex) -> None:
    before = loaded.count(C)
    loaded.upsert(C, [point(1, 0, collection_id=1, vector=[0.0, 1.0, 0.0, 0.0])])
    assert loaded.count(C) == before == 4
    hits = loaded.search(C, [0.0, 1.0, 0.0, 0.0], scope(1), limit=1)
    assert hits[0].chunk_id == 100  # the vector was replaced


def test_delete_version_removes_only_its_points(loaded: VectorIndex) -> None:
    loaded.upsert(C, [point(1, 0, collection_id=1, vector=[0.5, 0.5, 0.0, 0.0], version_id=11)])
    assert loaded.count(C, document_id=1) == 3
    loaded.delete_version(C, 10)
    assert loaded.count(C, version_id=10) == 0
    assert loaded.count(C, document_id=1) == loaded.count(C, version_id=11) == 1
    assert loaded.version_counts(C) == {11: 1, 20: 1, 30: 1}


def test_collections_are_separate_and_droppable(loaded: VectorIndex) -> None:
    other = "kb_test__g2"
    loaded.create_collection(other, DIM)
    assert loaded.count(other) == 0
    assert set(loaded.collection_names()) >= {C, other}
    loaded.drop_collection(other)
    assert other not in loaded.collection_names()
    with pytest.raises(MissingCollection):
        loaded.count(other)
    loaded.drop_collection(other)  # idempotent


def test_an_alias_switches_between_collections(loaded: VectorIndex) -> None:
    assert loaded.alias_target("kb_test") is None
    loaded.set_alias("kb_test", C)
    assert loaded.alias_target("kb_test") == C
    loaded.create_collection("kb_test__g2", DIM)
    loaded.set_alias("kb_test", "kb_test__g2")
    assert loaded.alias_target("kb_test") == "kb_test__g2"
    with pytest.raises(MissingCollection):
        loaded.set_alias("kb_test", "kb_test__missing")
    assert loaded.alias_target("kb_test") == "kb_test__g2"


def test_point_ids_are_deterministic() -> None:
    assert point_id_for_chunk(7, 3) == point_id_for_chunk(7, 3)
    assert point_id_for_chunk(7, 3) != point_id_for_chunk(3, 7)
