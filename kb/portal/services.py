"""answer_question: retrieval inside the user's scope, then the model or extractive passages."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from django.conf import settings

from inference.answering import Source, build_messages, extractive_answer, verify_citations
from inference.llm import ChatModel, LlamaCppLLM, LLMUnavailable, OpenAICompatibleLLM
from inference.retrieval import retrieve
from ingest.index import AccessScope, IndexHit, MissingCollection
from kb.accounts.access import AnyUser, access_scope_for
from kb.library.components import get_embedder, get_index
from kb.library.indexing import active_generation, hidden_version_ids
from kb.library.models import Chunk

logger = logging.getLogger(__name__)


@dataclass
class Answer:
    question: str
    text: str
    mode: str  # "generated", "extractive" or "not_found"
    sources: list[Source] = field(default_factory=list)
    cited: list[int] = field(default_factory=list)
    notice: str = ""
    model: str = ""
    seconds: float = 0.0

    @property
    def cited_sources(self) -> list[Source]:
        return [s for s in self.sources if s.number in self.cited]


NOT_FOUND_TEXT = "The documents you can access do not answer this question."


@lru_cache(maxsize=1)
def get_chat_model() -> ChatModel | None:
    """The configured model: a server if LLM_BASE_URL is set, else a local GGUF, else none."""
    if settings.LLM_BASE_URL:
        return OpenAICompatibleLLM(
            settings.LLM_BASE_URL,
            settings.LLM_MODEL,
            api_key=settings.LLM_API_KEY,
            timeout=settings.LLM_TIMEOUT_SECONDS,
            max_tokens=settings.LLM_MAX_TOKENS,
        )
    if settings.LLM_GGUF_PATH:
        return LlamaCppLLM(
            Path(settings.LLM_GGUF_PATH),
            context_tokens=settings.LLM_CONTEXT_TOKENS,
            max_tokens=settings.LLM_MAX_TOKENS,
        )
    return None


def _load_sources(hit_chunk_ids: list[int], scores: list[float]) -> list[Source]:
    chunks = Chunk.objects.select_related("document").in_bulk(hit_chunk_ids)
    sources: list[Source] = []
    for chunk_id, score in zip(hit_chunk_ids, scores, strict=True):
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
            )
        )
    return sources


def search_passages(question: str, scope: AccessScope) -> list[IndexHit]:
    """Retrieval against the served index generation, embedding with its own model."""
    for attempt in range(2):
        generation = active_generation()
        try:
            return retrieve(
                question,
                scope,
                embedder=get_embedder(generation.model_name),
                index=get_index(),
                collection=generation.collection_name,
                top_k=settings.RETRIEVAL_TOP_K,
                min_score=settings.RETRIEVAL_MIN_SCORE,
                exclude_version_ids=hidden_version_ids(),
            )
        except MissingCollection:
            # A rebuild switched generations between our read and the query: read again.
            if attempt:
                raise
    return []


def answer_question(user: AnyUser, question: str) -> Answer:
    started = time.monotonic()
    question = question.strip()
    hits = search_passages(question, access_scope_for(user))
    sources = _load_sources([h.chunk_id for h in hits], [h.score for h in hits])
    if not sources:
        return Answer(question, NOT_FOUND_TEXT, "not_found", seconds=time.monotonic() - started)

    model = get_chat_model()
    notice = ""
    if model is not None:
        try:
            completion = model.complete(build_messages(question, sources))
            text, cited = verify_citations(completion.answer, len(sources))
            if text:
                return Answer(
                    question,
                    text,
                    "generated",
                    sources,
                    cited,
                    model=completion.model,
                    seconds=time.monotonic() - started,
                )
            notice = "The language model returned no answer; showing the most relevant passages."
        except LLMUnavailable as exc:
            logger.warning("LLM unavailable, answering extractively: %s", exc)
            notice = "The language model is unavailable; showing the most relevant passages."
    else:
        notice = "No language model is configured; showing the most relevant passages."
    text, cited = verify_citations(extractive_answer(sources), len(sources))
    return Answer(
        question, text, "extractive", sources, cited, notice, seconds=time.monotonic() - started
    )
