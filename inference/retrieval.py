"""Hybrid retrieval: dense and lexical, fused. The caller's AccessScope travels into every
index query itself.

The dense channel finds passages that mean what the question means; the lexical channel finds
the ones that share its rare words (a product code, a name, a Chinese term the embedding model
barely knows). Each has its own threshold, and the answer is "not in your documents" only when
no passage passes either.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

from ingest.index import DEFAULT_FUSION, AccessScope, Fusion, IndexHit, VectorIndex
from ingest.lexical import query_vector

RetrievalMode = Literal["hybrid", "dense"]


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
    min_lexical_score: float,
    mode: RetrievalMode,
    exclude_version_ids: frozenset[int] = frozenset(),
    lexical_expansion: Sequence[str] = (),
    question_vector: Sequence[float] | None = None,
    fusion: Fusion = DEFAULT_FUSION,
    answer_lexical_score: float | None = None,
) -> list[IndexHit]:
    """The best passages the scope allows, best first (fused rank); each one has a cosine of
    at least `min_score` or a lexical score of at least `min_lexical_score`.

    `answer_lexical_score`: when no passage passes `min_score`, the lexical matches answer
    the question only if one of them reaches this (else: none, "not in your documents").
    Weak lexical matches still help to rank passages the model found; alone, a couple of
    shared common words are not an answer. None: `min_lexical_score` decides both.

    `collection` is the served index generation and `embedder` must be its model;
    `exclude_version_ids` are document versions that are not current (mid-switch).
    The product passes its lexical threshold and RETRIEVAL_MODE; mode "dense" skips the
    lexical channel (for comparisons).

    `lexical_expansion` (other forms of glossary terms the question mentions) is added to the
    lexical query only: the dense query stays the question, because the embedding of a
    question with a list of synonyms appended drifts away from what was asked.

    `question_vector`: the question's embedding by `embedder`, when the caller already has it.
    `min_score`, `fusion` and `answer_lexical_score` come from the model's
    RetrievalCalibration.
    """
    if scope.is_empty or not question.strip():
        return []
    hits = index.search(
        collection,
        list(question_vector) if question_vector is not None else embedder.embed_query(question),
        scope,
        limit=top_k,
        min_score=min_score,
        exclude_version_ids=exclude_version_ids,
        sparse=query_vector(" ".join([question, *lexical_expansion])) if mode == "hybrid" else None,
        min_lexical_score=min_lexical_score,
        fusion=fusion,
    )
    if answer_lexical_score is not None and not any(
        hit.dense_score is not None or (hit.lexical_score or 0.0) >= answer_lexical_score
        for hit in hits
    ):
        return []  # the question is not answered here: the hits are weak lexical ones only
    return hits
