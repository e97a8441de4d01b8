"""One contract, two adapters: Qdrant Edge (embedded) and Qdrant server via qdrant-client.

The server adapter runs against qdrant-client's local mode, which serves the same client API
in-process; no Qdrant server can run on the CI machine.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import qdrant_edge as qe
from qdrant_client import QdrantClient, models

from ingest.index import (
    INDEX_SCHEMA_VERSION,
    AccessScope,
    Fusion,
    IndexHit,
    IndexPoint,
    MissingCollection,
    SnapshotRefused,
    SparseVector,
    UnscopedQueryError,
    point_id_for_chunk,
)
from ingest.index import qdrant_edge as edge_adapter
from ingest.index import qdrant_server as server_adapter
from ingest.index.base import DENSE_VECTOR, VectorIndex
from ingest.index.qdrant_edge import QdrantEdgeIndex
from ingest.index.qdrant_server import QdrantServerIndex
from ingest.lexical import document_vector, query_vector

DIM = 4
C = "kb_test__g1"


@pytest.fixture(params=["qdrant-edge", "qdrant-server"])
def make_index(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[str], VectorIndex]]:
    """Makes empty indexes of one adapter kind, each in its own directory `name`."""
    made: list[VectorIndex] = []

    def make(name: str) -> VectorIndex:
        adapter: VectorIndex
        if request.param == "qdrant-edge":
            adapter = QdrantEdgeIndex(tmp_path / name / "edge")
        else:
            # Usable from any thread, as the product's adapter is (web threads and worker).
            client = QdrantClient(
                path=str(tmp_path / name / "local"), force_disable_check_same_thread=True
            )
            adapter = QdrantServerIndex(client)
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        adapter.close()


@pytest.fixture
def index(make_index: Callable[[str], VectorIndex]) -> VectorIndex:
    adapter = make_index("index")
    adapter.create_collection(C, DIM)
    adapter.create_collection(C, DIM)  # idempotent
    return adapter


def point(
    document_id: int,
    ordinal: int,
    collection_id: int,
    vector: list[float],
    version_id: int = 0,
    text: str = "",
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
        sparse=document_vector(text) if text else None,
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
    for sparse in (None, query_vector("XK-4471B")):
        with pytest.raises(MissingCollection):
            loaded.search(other, [1.0, 0.0, 0.0, 0.0], scope(1), 5, sparse=sparse)
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


# --- hybrid: the lexical channel -----------------------------------------------------------

# The question's dense vector points away from every passage below, so whatever a search
# with min_score=0.9 finds, it found through the lexical channel.
ELSEWHERE = [0.0, 0.0, 0.0, 1.0]
FILLER = [
    "Hotels are booked through the travel desk.",
    "Trains are booked in second class.",
    "Laptops use disk encryption.",
    "New hires receive a badge on day one.",
]


@pytest.fixture
def texts(index: VectorIndex) -> VectorIndex:
    index.upsert(
        C,
        [
            point(1, 0, 1, [1.0, 0.0, 0.0, 0.0], text="Warranty terms for model XK-4471B."),
            point(1, 1, 1, [0.9, 0.1, 0.0, 0.0], text="差旅费报销需要部门经理审批。"),
            point(2, 0, 2, [1.0, 0.0, 0.0, 0.0], text="Model XK-4471B: warranty XK-4471B."),
            *(point(3, i, 1, [0.0, 1.0, 0.0, 0.0], text=t) for i, t in enumerate(FILLER)),
        ],
    )
    return index


def lexical(
    index: VectorIndex,
    question: str,
    scope: AccessScope,
    limit: int = 10,
    *,
    min_lexical_score: float | None = None,
    exclude_version_ids: frozenset[int] = frozenset(),
) -> list[int]:
    """Chunk ids found for `question` through the lexical channel alone."""
    hits = index.search(
        C,
        ELSEWHERE,
        scope,
        limit,
        min_score=0.9,
        exclude_version_ids=exclude_version_ids,
        sparse=query_vector(question),
        min_lexical_score=min_lexical_score,
    )
    return [h.chunk_id for h in hits]


def test_a_rare_code_is_found_through_the_lexical_channel(texts: VectorIndex) -> None:
    assert texts.search(C, ELSEWHERE, scope(1), 10, min_score=0.9) == []  # dense alone
    hits = texts.search(C, ELSEWHERE, scope(1), 10, min_score=0.9, sparse=query_vector("xk-4471b"))
    assert [h.chunk_id for h in hits] == [100]
    assert hits[0].dense_score is None and hits[0].lexical_score is not None
    assert hits[0].lexical_score > 0 and hits[0].score > 0


def test_a_chinese_term_is_found_through_the_lexical_channel(texts: VectorIndex) -> None:
    assert lexical(texts, "报销差旅费找谁审批？", scope(1)) == [101]
    assert lexical(texts, "税", scope(1)) == []


def test_both_channels_are_fused_and_keep_their_scores(texts: VectorIndex) -> None:
    hits = texts.search(
        C, [1.0, 0.0, 0.0, 0.0], scope(1), 10, min_score=0.5, sparse=query_vector("XK-4471B")
    )
    assert [h.chunk_id for h in hits] == [100, 101]  # 100: first in both channels
    assert hits[0].dense_score == pytest.approx(1.0)
    assert hits[0].lexical_score is not None and hits[0].lexical_score > 0
    assert hits[1].lexical_score is None and hits[1].dense_score is not None
    assert hits[0].score > hits[1].score


def test_the_lexical_weight_decides_between_the_channels_firsts(texts: VectorIndex) -> None:
    # Dense puts a filler passage first, lexical the XK-4471B warranty (chunk 100, whose
    # cosine is below the threshold): the model's calibrated weight decides which leads.
    def first(weight: float) -> int:
        hits = texts.search(
            C, [0.0, 1.0, 0.0, 0.0], scope(1), 10, min_score=0.5,
            sparse=query_vector("XK-4471B"), fusion=Fusion(lexical_weight=weight),
        )  # fmt: skip
        assert 100 in [h.chunk_id for h in hits]
        return hits[0].chunk_id

    assert first(2.0) == 100
    assert first(0.5) != 100


def test_the_lexical_channel_never_leaves_the_scope(texts: VectorIndex) -> None:
    # Collection 2's passage matches the code better (it says it twice) and is never returned
    # to a caller who may read collection 1 only.
    assert lexical(texts, "XK-4471B warranty", scope(1)) == [100]
    assert lexical(texts, "XK-4471B warranty", scope(2)) == [200]
    assert lexical(texts, "XK-4471B warranty", scope()) == []


def test_the_lexical_scope_is_applied_inside_the_query_not_after(index: VectorIndex) -> None:
    # Far more out-of-scope passages match better than any search depth would cover: a
    # post-filter would be left with nothing, a filter inside the query finds the one.
    index.upsert(
        C,
        [point(9, i, 2, ELSEWHERE, text="audit audit audit report") for i in range(60)]
        + [point(8, 0, 1, [1.0, 0.0, 0.0, 0.0], text="The audit is yearly, and long winded.")],
    )
    assert lexical(index, "audit", scope(1), limit=1) == [800]


def test_other_collections_do_not_shift_lexical_scores(index: VectorIndex) -> None:
    # IDF comes from the passages the caller may read: how often a word occurs in another
    # department's documents must not show in this department's scores.
    index.upsert(C, [point(1, 0, 1, [1.0, 0.0, 0.0, 0.0], text="Canary phrase lorem ipsum.")])
    index.upsert(C, [point(1, 1, 1, [1.0, 0.0, 0.0, 0.0], text="Another passage.")])

    def score() -> float | None:
        hits = index.search(C, ELSEWHERE, scope(1), 1, min_score=0.9, sparse=query_vector("lorem"))
        return hits[0].lexical_score

    before = score()
    index.upsert(C, [point(5, i, 2, ELSEWHERE, text="lorem") for i in range(20)])
    assert score() == pytest.approx(before)


def test_excluded_versions_are_invisible_to_both_channels(texts: VectorIndex) -> None:
    texts.upsert(C, [point(1, 0, 1, [1.0, 0.0, 0.0, 0.0], version_id=11, text="XK-4471B")])
    assert sorted(lexical(texts, "XK-4471B", scope(1))) == [100, 100]  # versions 10 and 11
    hidden = frozenset({10})
    assert lexical(texts, "XK-4471B", scope(1), exclude_version_ids=hidden) == [100]
    hits = texts.search(
        C,
        [1.0, 0.0, 0.0, 0.0],
        scope(1),
        10,
        min_score=0.5,
        exclude_version_ids=hidden,
        sparse=query_vector("XK-4471B"),
    )
    assert {h.version_id for h in hits} == {11}


def test_min_lexical_score_drops_weak_matches(texts: VectorIndex) -> None:
    [hit] = texts.search(C, ELSEWHERE, scope(1), 10, min_score=0.9, sparse=query_vector("xk"))
    assert hit.lexical_score is not None
    assert lexical(texts, "xk", scope(1), min_lexical_score=hit.lexical_score - 0.01) == [100]
    assert lexical(texts, "xk", scope(1), min_lexical_score=hit.lexical_score + 0.01) == []


def test_an_empty_lexical_query_searches_dense_only(texts: VectorIndex) -> None:
    dense = texts.search(C, [1.0, 0.0, 0.0, 0.0], scope(1), 10, min_score=0.5)
    for empty in (SparseVector((), ()), query_vector("the of and"), None):
        hits = texts.search(C, [1.0, 0.0, 0.0, 0.0], scope(1), 10, min_score=0.5, sparse=empty)
        assert hits == dense
    assert [h.chunk_id for h in dense] == [100, 101]
    assert all(h.dense_score is not None and h.lexical_score is None for h in dense)


def test_search_without_a_scope_is_refused_with_a_lexical_query(texts: VectorIndex) -> None:
    with pytest.raises(UnscopedQueryError):
        texts.search(C, ELSEWHERE, None, 5, sparse=query_vector("XK-4471B"))  # type: ignore[arg-type]


def test_each_collection_records_its_schema_version(
    index: VectorIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert index.schema_version(C) == INDEX_SCHEMA_VERSION
    # A later release (a new tokenizer, say) creates its collections with a higher version;
    # the ones made before keep reporting theirs, which is what triggers their rebuild.
    for adapter in (edge_adapter, server_adapter):
        monkeypatch.setattr(adapter, "INDEX_SCHEMA_VERSION", INDEX_SCHEMA_VERSION + 1)
    index.create_collection("kb_test__g2", DIM)
    assert index.schema_version("kb_test__g2") == INDEX_SCHEMA_VERSION + 1
    assert index.schema_version(C) == INDEX_SCHEMA_VERSION
    index.drop_collection("kb_test__g2")
    with pytest.raises(MissingCollection):
        index.schema_version("kb_test__g2")


def create_dense_only_collection(index: VectorIndex, name: str, dimension: int = DIM) -> None:
    """A collection as releases before hybrid retrieval created them (schema 1)."""
    if isinstance(index, QdrantEdgeIndex):
        path = index.root / "collections" / name
        path.mkdir(parents=True)
        config = qe.EdgeConfig(
            vectors={DENSE_VECTOR: qe.EdgeVectorParams(size=dimension, distance=qe.Distance.Cosine)}
        )
        qe.EdgeShard.create(str(path), config).close()
    else:
        assert isinstance(index, QdrantServerIndex)
        index.client.create_collection(
            name,
            vectors_config={
                DENSE_VECTOR: models.VectorParams(size=dimension, distance=models.Distance.COSINE)
            },
        )


def test_a_dense_only_collection_keeps_working_until_it_is_rebuilt(index: VectorIndex) -> None:
    old = "kb_test__g0"
    create_dense_only_collection(index, old)
    assert index.schema_version(old) == 1
    # Writes during a rebuild reach the old collection too: without their lexical vectors.
    index.upsert(old, [point(1, 0, 1, [1.0, 0.0, 0.0, 0.0], text="XK-4471B")])
    hits = index.search(
        old, [1.0, 0.0, 0.0, 0.0], scope(1), 5, min_score=0.5, sparse=query_vector("XK-4471B")
    )
    assert [(h.chunk_id, h.lexical_score) for h in hits] == [(100, None)]
    assert index.count(old) == 1


# --- backup: paused writes, snapshot and restore -------------------------------------------


@pytest.fixture
def distinct(index: VectorIndex) -> VectorIndex:
    """Points that no search below ranks equal: the order of equals is the storage order,
    which a restore need not keep."""
    index.upsert(
        C,
        [
            point(1, 0, 1, [1.0, 0.0, 0.0, 0.0], text="Warranty terms for model XK-4471B."),
            point(1, 1, 1, [0.9, 0.3, 0.0, 0.1], text="差旅费报销需要部门经理审批。"),
            point(2, 0, 2, [0.8, 0.1, 0.5, 0.0], text="Model XK-4471B: warranty XK-4471B."),
            point(3, 0, 1, [0.1, 1.0, 0.2, 0.0], text="Hotels are booked at the travel desk."),
            point(3, 1, 1, [0.0, 0.7, 0.6, 0.3], text="Trains are booked in second class here."),
            point(3, 2, 3, [0.2, 0.1, 0.9, 0.4], text="Laptops use disk encryption."),
            point(4, 0, 3, [0.3, 0.3, 0.3, 0.9], text="New hires get a badge and a warranty card."),
        ],
    )
    return index


def answers(index: VectorIndex, collection: str = C) -> list[list[IndexHit]]:
    """What a range of searches of `collection` returns: dense, lexical and fused, in and
    across scopes, with a version hidden."""
    return [
        index.search(collection, vector, scope(*ids), 10, min_score=min_score, sparse=sparse)
        for vector in ([1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.5, 0.5, 0.5, 0.5])
        for ids in ((1,), (1, 2), (2, 3))
        for min_score in (None, 0.3)
        for sparse in (None, query_vector("XK-4471B warranty"), query_vector("booked 差旅费"))
    ] + [
        index.search(
            collection, [1.0, 0.0, 0.0, 0.0], scope(1, 2), 10, exclude_version_ids=frozenset({10})
        )
    ]


def test_a_snapshot_restores_the_same_points_and_answers_into_a_fresh_index(
    distinct: VectorIndex, make_index: Callable[[str], VectorIndex], tmp_path: Path
) -> None:
    texts = distinct
    other = "kb_test__g2"
    texts.create_collection(other, DIM)
    texts.upsert(other, [point(7, 0, 1, [0.0, 0.0, 1.0, 0.0], text="Canteen menu.")])
    texts.create_collection("kb_test__left_out", DIM)
    texts.set_alias("kb_test", C)
    texts.set_alias("kb_left_out", "kb_test__left_out")
    target = tmp_path / "snapshot"

    files = texts.snapshot([C, other], target)
    assert files and files == sorted(files)
    assert all(f.is_file() and f.is_relative_to(target) for f in files)

    fresh = make_index("fresh")
    assert fresh.restore(target) == sorted([C, other])
    assert fresh.collection_names() == sorted([C, other])  # only what was asked for
    for name in (C, other):
        assert fresh.version_counts(name) == texts.version_counts(name)
        assert fresh.schema_version(name) == texts.schema_version(name) == INDEX_SCHEMA_VERSION
        assert answers(fresh, name) == answers(texts, name)
    assert any(hits for hits in answers(fresh))  # the comparison compared something
    assert fresh.alias_target("kb_test") == C
    assert fresh.alias_target("kb_left_out") is None
    # The restored collections are ordinary ones: they take writes.
    fresh.upsert(C, [point(5, 0, 1, [0.0, 0.0, 1.0, 0.0])])
    assert fresh.count(C) == texts.count(C) + 1


def test_restore_replaces_the_collection_of_the_same_name(
    distinct: VectorIndex, tmp_path: Path
) -> None:
    texts = distinct
    before = answers(texts)
    counts = texts.version_counts(C)
    texts.snapshot([C], tmp_path / "snapshot")
    texts.delete_version(C, 10)
    texts.upsert(C, [point(4, 0, 1, [1.0, 0.0, 0.0, 0.0], text="XK-4471B warranty")])
    assert texts.version_counts(C) != counts

    assert texts.restore(tmp_path / "snapshot") == [C]
    assert texts.version_counts(C) == counts
    assert answers(texts) == before


def test_a_dense_only_collection_is_restored_as_it_was(
    index: VectorIndex, make_index: Callable[[str], VectorIndex], tmp_path: Path
) -> None:
    old = "kb_test__g0"
    create_dense_only_collection(index, old)
    index.upsert(old, [point(1, 0, 1, [1.0, 0.0, 0.0, 0.0], text="XK-4471B")])
    index.snapshot([old], tmp_path / "snapshot")
    fresh = make_index("fresh")
    fresh.restore(tmp_path / "snapshot")
    assert fresh.schema_version(old) == 1  # so it is still rebuilt, as before the backup
    assert answers(fresh, old) == answers(index, old)


def test_the_recorded_schema_version_is_restored(
    index: VectorIndex,
    make_index: Callable[[str], VectorIndex],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Not one a collection's vectors would imply: only the record can bring it back.
    for adapter in (edge_adapter, server_adapter):
        monkeypatch.setattr(adapter, "INDEX_SCHEMA_VERSION", INDEX_SCHEMA_VERSION + 1)
    index.create_collection("kb_test__g3", DIM)
    index.snapshot(["kb_test__g3"], tmp_path / "snapshot")
    fresh = make_index("fresh")
    fresh.restore(tmp_path / "snapshot")
    assert fresh.schema_version("kb_test__g3") == INDEX_SCHEMA_VERSION + 1


def test_a_snapshot_of_a_missing_collection_is_refused(index: VectorIndex, tmp_path: Path) -> None:
    with pytest.raises(MissingCollection):
        index.snapshot([C, "kb_test__missing"], tmp_path / "snapshot")


def test_writes_from_other_threads_wait_while_writes_are_paused(
    loaded: VectorIndex, tmp_path: Path
) -> None:
    started = threading.Event()
    finished = threading.Event()
    failures: list[BaseException] = []

    def write() -> None:
        started.set()
        try:
            loaded.upsert(C, [point(4, 0, 1, [0.0, 1.0, 0.0, 0.0])])
            loaded.delete_version(C, 10)
        except BaseException as exc:
            failures.append(exc)
        finally:
            finished.set()

    writer = threading.Thread(target=write)
    with loaded.paused_writes([C, "kb_test__missing"]) as held:
        assert held == [C]  # what exists, opened; the missing one skipped
        writer.start()
        assert started.wait(timeout=30)
        # Unheld, two writes to a four-point collection are done well within this wait.
        assert not finished.wait(timeout=1.0)
        assert loaded.count(C) == 4 and loaded.count(C, version_id=10) == 2
        assert loaded.search(C, [0.0, 1.0, 0.0, 0.0], scope(1), 1)[0].chunk_id != 400
        # The thread that paused the writes can still take a consistent copy.
        assert loaded.snapshot([C], tmp_path / "snapshot")
    writer.join(timeout=60)
    assert finished.is_set() and not failures
    assert loaded.count(C, document_id=4) == 1 and loaded.count(C, version_id=10) == 0


def test_local_mode_refuses_a_qdrant_server_snapshot(tmp_path: Path) -> None:
    # qdrant-client's local mode has no snapshots: the server adapter writes its points out
    # instead (what the tests above restore), and cannot take a real server's snapshot back.
    index = QdrantServerIndex(QdrantClient(path=str(tmp_path / "local")))
    index.create_collection(C, DIM)
    index.upsert(C, [point(1, 0, 1, [1.0, 0.0, 0.0, 0.0])])
    source = tmp_path / "from-a-server"
    source.mkdir()
    (source / f"{C}{server_adapter.SNAPSHOT_SUFFIX}").write_bytes(b"a Qdrant server's tar")
    try:
        with pytest.raises(SnapshotRefused):
            index.restore(source)
        assert index.count(C) == 1  # untouched
    finally:
        index.close()
