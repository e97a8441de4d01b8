"""Dense retrieval. The caller's AccessScope travels into the index query itself."""

from __future__ import annotations

from typing import Protocol

from ingest.index import AccessScope, IndexHit, VectorIndex


class QueryEmbedder(Protocol):
    def embed_query(self, text: str) -> list[float]: ...


def retrieve(
    question: str,
    scope: AccessScope,
    *,
    embedder: QueryEmbedder,
    index: VectorIndex,
    collection: str,
    top_k: int,
    min_score: float,
    exclude_version_ids: frozenset[int] = frozenset(),
) -> list[IndexHit]:
    """The best passages the scope allows, best first; none below `min_score`.

    `collection` is the served index generation and `embedder` must be its model;
    `exclude_version_ids` are document versions that are not current (mid-switch).
    """
    if scope.is_empty or not question.strip():
        return []
    return index.search(
        collection,
        embedder.embed_query(question),
        scope,
        limit=top_k,
        min_score=min_score,
        exclude_version_ids=exclude_version_ids,
    )
