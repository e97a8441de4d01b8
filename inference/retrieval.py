"""Hybrid retrieval: dense and lexical, fused. The caller's AccessScope travels into every
index query itself.

The dense channel finds passages that mean what the question means; the lexical channel finds
the ones that share its rare words (a product code, a name, a Chinese term the embedding model
barely knows). Each has its own threshold, and the answer is "not in your documents" only when
no passage passes either.
"""

from __future__ import annotations

from typing import Literal, Protocol

from ingest.index import AccessScope, IndexHit, VectorIndex
from ingest.lexical import query_vector

RetrievalMode = Literal["hybrid", "dense"]

# Defaults when neither the caller nor Django settings say otherwise (kb/settings.py).
DEFAULT_MIN_LEXICAL_SCORE = 1.5
DEFAULT_MODE: RetrievalMode = "hybrid"


class QueryEmbedder(Protocol):
    def embed_query(self, text: str) -> list[float]: ...


def _configured_min_lexical_score() -> float:
    value = _django_setting("RETRIEVAL_MIN_LEXICAL_SCORE")
    return float(value) if isinstance(value, int | float) else DEFAULT_MIN_LEXICAL_SCORE


def _configured_mode() -> RetrievalMode:
    return "dense" if _django_setting("RETRIEVAL_MODE") == "dense" else DEFAULT_MODE


def _django_setting(name: str) -> object:
    """The product's setting `name`, or None where Django is not configured (a benchmark or a
    unit test using this module on its own)."""
    try:
        from django.conf import settings
    except ImportError:  # pragma: no cover - Django is a dependency of the product
        return None
    if not settings.configured:
        return None
    value: object = getattr(settings, name, None)
    return value


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
    min_lexical_score: float | None = None,
    mode: RetrievalMode | None = None,
) -> list[IndexHit]:
    """The best passages the scope allows, best first (fused rank); each one has a cosine of
    at least `min_score` or a lexical score of at least `min_lexical_score`.

    `collection` is the served index generation and `embedder` must be its model;
    `exclude_version_ids` are document versions that are not current (mid-switch).
    `min_lexical_score` and `mode` default to RETRIEVAL_MIN_LEXICAL_SCORE and RETRIEVAL_MODE;
    mode "dense" skips the lexical channel (for comparisons).
    """
    if scope.is_empty or not question.strip():
        return []
    if mode is None:
        mode = _configured_mode()
    if min_lexical_score is None:
        min_lexical_score = _configured_min_lexical_score()
    return index.search(
        collection,
        embedder.embed_query(question),
        scope,
        limit=top_k,
        min_score=min_score,
        exclude_version_ids=exclude_version_ids,
        sparse=query_vector(question) if mode == "hybrid" else None,
        min_lexical_score=min_lexical_score,
    )
