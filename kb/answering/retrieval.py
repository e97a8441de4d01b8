"""Retrieval for answers and passage search: the served index generation, searched with its
own model and calibration, inside the asker's access scope (in the query, never after)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

from django.conf import settings

from inference.answering import OVERLAP_WEIGHT, SentenceScorer, Source, question_overlap
from inference.retrieval import RetrievalMode, retrieve
from ingest.embedding import Embedder, PendingQuery
from ingest.index import AccessScope, Fusion, IndexHit, MissingCollection
from ingest.index.unavailable import IndexUnavailable, is_unreachable
from ingest.lexical import tokenize
from kb.library.components import get_embedder, get_index
from kb.library.indexing import active_generation, hidden_version_ids
from kb.library.models import Chunk


def load_sources(hits: list[IndexHit]) -> list[Source]:
    # The collection too: its classification decides which model endpoints may see the passage.
    chunks = Chunk.objects.select_related("document__collection").in_bulk(
        [h.chunk_id for h in hits]
    )
    sources: list[Source] = []
    for hit in hits:
        chunk_id = hit.chunk_id
        # The cosine where the dense channel found it; else the fused rank score.
        score = hit.dense_score if hit.dense_score is not None else hit.score
        chunk = chunks.get(chunk_id)
        if chunk is None:  # deleted since it was indexed; the index catches up on its own
            continue
        sources.append(
            Source(
                number=len(sources) + 1,
                chunk_id=chunk.pk,
                document_id=chunk.document_id,
                title=chunk.document.title,
                page=chunk.page,
                section=chunk.section_path,
                text=chunk.text,
                score=score,
                classification=chunk.document.collection.classification,
            )
        )
    return sources


def start_question_embedding(question: str) -> PendingQuery:
    """Start embedding `question` with the served generation's model and return at once:
    the embedding is the slowest step before the model is called, and the database work
    done meanwhile (conversation, quota, glossary, access scope) costs it nothing."""
    return get_embedder(active_generation().model_name).start_query(question)


class RetrievalOptions(TypedDict):
    top_k: int
    min_score: float
    min_lexical_score: float
    answer_lexical_score: float
    mode: RetrievalMode
    fusion: Fusion


def retrieval_options(embedder: Embedder) -> RetrievalOptions:
    """How the product retrieves with this model: the settings, or where they are unset the
    model's calibration. The benchmarks measure with exactly these."""
    lexical = min_lexical_score_for(embedder)
    return {
        "top_k": settings.RETRIEVAL_TOP_K,
        "min_score": min_score_for(embedder),
        "min_lexical_score": lexical,
        "answer_lexical_score": max(lexical, embedder.calibration.answer_lexical_score),
        "mode": "dense" if settings.RETRIEVAL_MODE == "dense" else "hybrid",
        "fusion": embedder.calibration.fusion,
    }


def min_score_for(embedder: Embedder) -> float:
    """The dense threshold: RETRIEVAL_MIN_SCORE when the operator set one, else the one
    measured for the served model (its RetrievalCalibration)."""
    if settings.RETRIEVAL_MIN_SCORE is not None:
        return float(settings.RETRIEVAL_MIN_SCORE)
    return embedder.calibration.min_score


def min_lexical_score_for(embedder: Embedder) -> float:
    """The lexical threshold: RETRIEVAL_MIN_LEXICAL_SCORE when set, else the served model's
    (how much a passage the model does not find must share with the question to count)."""
    if settings.RETRIEVAL_MIN_LEXICAL_SCORE is not None:
        return float(settings.RETRIEVAL_MIN_LEXICAL_SCORE)
    return embedder.calibration.min_lexical_score


def sentence_scorer(question: str) -> SentenceScorer:
    """How well each sentence answers `question`, by the served generation's model: what
    an extractive answer picks its sentences by."""
    embedder = get_embedder(active_generation().model_name)
    asked = set(tokenize(question))

    def score(sentences: list[str]) -> list[float]:
        cosines = embedder.similarities(question, sentences)
        return [
            cosine + OVERLAP_WEIGHT * question_overlap(asked, set(tokenize(sentence)))
            for cosine, sentence in zip(cosines, sentences, strict=True)
        ]

    return score


def search_passages(
    question: str,
    scope: AccessScope,
    lexical_expansion: Sequence[str] = (),
    early: PendingQuery | None = None,
) -> list[IndexHit]:
    """Retrieval against the served index generation, embedding with its own model.
    `lexical_expansion`: other forms of glossary terms the question mentions. `early`: the
    question's embedding, started by `start_question_embedding`; used if the generation
    still has that model."""
    for attempt in range(2):
        generation = active_generation()
        embedder = get_embedder(generation.model_name)
        vector = early.vector() if early and early.model_path == embedder.model_path else None
        try:
            return retrieve(
                question,
                scope,
                embedder=embedder,
                index=get_index(),
                collection=generation.collection_name,
                **retrieval_options(embedder),
                exclude_version_ids=hidden_version_ids(),
                lexical_expansion=lexical_expansion,
                question_vector=vector,
            )
        except MissingCollection:
            # A rebuild switched generations between our read and the query: read again.
            if attempt:
                raise
        except Exception as exc:
            # The index server is down or cut off: a clear "try again shortly" for the
            # caller (503), not a server error (docs/security.md case 12, bench/drills.py).
            if is_unreachable(exc):
                raise IndexUnavailable(f"the search index did not answer: {exc}") from exc
            raise
    return []
