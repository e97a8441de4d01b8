"""retrieve(): when lexical matches alone answer a question (the answer gate)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from inference.retrieval import retrieve
from ingest.index import AccessScope, IndexPoint, point_id_for_chunk
from ingest.index.qdrant_edge import QdrantEdgeIndex
from ingest.lexical import document_vector

C = "kb_test_answer_gate"
FILLER = [f"Routine maintenance note number {n} about pumps and valves." for n in range(30)]


class FixedVector:
    def embed_query(self, text: str) -> list[float]:
        return [0.0, 1.0, 0.0, 0.0]  # far from every stored passage


@pytest.fixture
def index(tmp_path: Path) -> Iterator[QdrantEdgeIndex]:
    adapter = QdrantEdgeIndex(tmp_path / "edge")
    adapter.create_collection(C, 4)
    texts = ["Warranty terms for model XK-4471B and model QZ-9.", *FILLER]
    adapter.upsert(
        C,
        [
            IndexPoint(
                point_id_for_chunk(n + 1, 0),
                [1.0, 0.0, 0.0, 0.0],
                n,
                n,
                n + 1,
                1,
                10,
                document_vector(text),
            )
            for n, text in enumerate(texts)
        ],
    )
    yield adapter
    adapter.close()


def ask(index: QdrantEdgeIndex, question: str, gate: float | None) -> list[int]:
    hits = retrieve(
        question, AccessScope(frozenset({1})), embedder=FixedVector(), index=index,
        collection=C, top_k=5, min_score=0.5, min_lexical_score=0.5, mode="hybrid",
        answer_lexical_score=gate,
    )  # fmt: skip
    return [hit.chunk_id for hit in hits]


def test_weak_lexical_matches_alone_do_not_answer_past_the_gate(index: QdrantEdgeIndex) -> None:
    # No passage is near in meaning; the lexical channel matches both rare codes strongly,
    # or one common word ("model") weakly.
    strong = ask(index, "warranty XK-4471B QZ-9", gate=3.0)
    assert strong and strong[0] == 0
    assert ask(index, "which model", gate=None) == [0]  # no gate: the weak match stands
    assert ask(index, "which model", gate=3.0) == []  # gated: "not in your documents"
