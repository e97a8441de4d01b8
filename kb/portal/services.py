"""Answering: retrieval inside the user's scope, then the model (streamed) or passages.

`stream_answer` is the one path: it yields events as the answer is produced (sources, answer
and reasoning pieces, then the finished answer) and records the turn; `answer_question` is
the same path consumed to the end. With no model configured, the model down, or the model
cut off mid-answer, the answer degrades to the best passages with a notice, never an error.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, TypedDict

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext, gettext_noop

from inference.answering import (
    OVERLAP_WEIGHT,
    SentenceScorer,
    Source,
    accept_rewrite,
    build_messages,
    extractive_answer,
    fallback_rewrite,
    is_follow_up,
    question_overlap,
    rewrite_messages,
    verify_citations,
)
from inference.llm import (
    ChatModel,
    Completion,
    Delta,
    LlamaCppLLM,
    LLMUnavailable,
    OpenAICompatibleLLM,
)
from inference.retrieval import RetrievalMode, retrieve
from ingest.embedding import Embedder, PendingQuery, model_fingerprint
from ingest.index import AccessScope, Fusion, IndexHit, MissingCollection
from ingest.index.unavailable import IndexUnavailable, is_unreachable
from ingest.lexical import tokenize
from kb.accounts.access import AnyUser, access_scope_for
from kb.audit.trail import record
from kb.glossary.services import lexical_expansion, terms_for_question
from kb.library.components import get_embedder, get_index
from kb.library.indexing import active_generation, hidden_version_ids
from kb.library.models import Chunk, Document
from kb.ops.metrics import observe_answer
from kb.portal.models import Conversation, Turn
from kb.routing.policy import choose_endpoint, rewrite_model
from kb.usage.meter import Meter, admit, record_usage

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
    model_version: str = ""
    endpoint: str = ""  # the routing policy's name for where the model ran (kb/routing)
    reasoning: str = ""
    search_query: str = ""
    seconds: float = 0.0
    first_token_seconds: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    conversation_id: int | None = None
    turn_id: int | None = None

    @property
    def cited_sources(self) -> list[Source]:
        return [s for s in self.sources if s.number in self.cited]

    @property
    def follow_ups(self) -> list[str]:
        return suggest_follow_ups(self)


MAX_FOLLOW_UPS = 3


def suggest_follow_ups(answer: Answer) -> list[str]:
    """Questions the reader may want next, from the passages the answer stood on: what else
    the cited sections and documents say. Nothing when nothing was found. In the language
    active for the request (the portal's), built without asking the model (no extra wait)."""
    suggestions: list[str] = []
    seen: set[str] = set()
    ordered = answer.cited_sources + [s for s in answer.sources if s.number not in answer.cited]
    for source in ordered:
        topic = source.section.split(" > ")[-1].strip() if source.section else ""
        for text in (
            gettext("What else does “%(topic)s” say?") % {"topic": topic} if topic else "",
            gettext("Summarize “%(title)s”") % {"title": source.title},
        ):
            if text and text not in seen and text != answer.question:
                seen.add(text)
                suggestions.append(text)
        if len(suggestions) >= MAX_FOLLOW_UPS:
            break
    return suggestions[:MAX_FOLLOW_UPS]


# The fixed texts of an answer stay English here: they are stored with the turn, hashed into
# the audit record and returned by the REST API as they are. gettext_noop only marks them;
# the portal shows them in the reader's language (kb/portal/views.py, conversation.html).
NOT_FOUND_TEXT = gettext_noop("The documents you can access do not answer this question.")
NOTICE_NO_MODEL = gettext_noop(
    "No language model is configured; showing the most relevant passages."
)
NOTICE_EMPTY = gettext_noop(
    "The language model returned no answer; showing the most relevant passages."
)
NOTICE_STOPPED = gettext_noop(
    "The language model stopped in the middle of the answer; showing the most relevant passages."
)
NOTICE_UNAVAILABLE = gettext_noop(
    "The language model is unavailable; showing the most relevant passages."
)


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


@lru_cache(maxsize=1)
def chat_model_version() -> str:
    """The version recorded with every answer: LLM_MODEL_VERSION as the operator declares it
    (vLLM serves a directory; its revision is known to whoever deployed it), or for a local
    GGUF a fingerprint of the file itself."""
    if settings.LLM_MODEL_VERSION:
        return str(settings.LLM_MODEL_VERSION)
    if not settings.LLM_BASE_URL and settings.LLM_GGUF_PATH:
        path = Path(settings.LLM_GGUF_PATH)
        return model_fingerprint(path) if path.is_file() else ""
    return ""


def describe_chat_model() -> dict[str, str]:
    """What answers questions, as admins see it on the models page."""
    if settings.LLM_BASE_URL:
        backend = gettext("OpenAI-compatible server (vLLM)")
        name, where = settings.LLM_MODEL, settings.LLM_BASE_URL
    elif settings.LLM_GGUF_PATH:
        backend = gettext("llama.cpp in-process")
        name, where = Path(settings.LLM_GGUF_PATH).name, ""
    else:
        backend, name, where = gettext("none: answers are the most relevant passages"), "", ""
    model = get_chat_model()
    return {
        "backend": backend,
        "name": name,
        "where": where,
        "model_id": model.model_id if model else "",
        "version": chat_model_version(),
    }


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


def _conversation_for(user: AnyUser, conversation_id: int | None, question: str) -> Conversation:
    if not user.is_authenticated:
        raise PermissionDenied("sign in to ask")
    if conversation_id is None:
        return Conversation.objects.create(user_id=int(user.pk), title=question[:200])
    conversation = Conversation.objects.filter(pk=conversation_id).first()
    # Someone else's conversation is refused, not silently replaced by a new one.
    if conversation is None or conversation.user_id != user.pk:
        raise PermissionDenied("that conversation is not yours")
    return conversation


def search_query_for(question: str, earlier: list[str], model: ChatModel | None) -> str:
    """The question as retrieval should see it: follow-ups rewritten to stand alone."""
    if not earlier or not is_follow_up(question):
        return question
    if model is None:
        return fallback_rewrite(earlier, question)
    try:
        rewritten = model.complete(rewrite_messages(earlier, question)).answer
    except LLMUnavailable:
        return fallback_rewrite(earlier, question)
    return accept_rewrite(rewritten, question, earlier)


def _source_json(source: Source, hit: IndexHit | None) -> dict[str, Any]:
    return {
        "number": source.number,
        "chunk_id": source.chunk_id,
        "document_id": source.document_id,
        "version_id": hit.version_id if hit else None,
        "fused_score": round(hit.score, 5) if hit else None,
        "dense_score": round(hit.dense_score, 4) if hit and hit.dense_score is not None else None,
        "lexical_score": (
            round(hit.lexical_score, 3) if hit and hit.lexical_score is not None else None
        ),
    }


def stream_answer(
    user: AnyUser,
    question: str,
    conversation_id: int | None = None,
    scope: AccessScope | None = None,
) -> Iterator[tuple[str, Any]]:
    """Events: ("sources", [Source]), ("answer", text piece), ("reasoning", text piece),
    then ("done", Answer). The turn is recorded before "done" is yielded.

    `scope` narrows what is searched below the user's own (an API token limited to some
    collections); by default it is the user's."""
    started = time.monotonic()
    question = question.strip()
    conversation = _conversation_for(user, conversation_id, question)
    # A question that opens a conversation, or stands alone, is searched as it is: start its
    # embedding now and do the database work below while the model runs. (A follow-up may be
    # rewritten first.)
    follow_up = conversation_id is not None and is_follow_up(question)
    early = None if follow_up else start_question_embedding(question)
    latest = conversation.turns.order_by("-id").values_list("search_query", flat=True)[:3]
    earlier = list(reversed(latest))
    model = get_chat_model()
    # The department's monthly quota, before any model is called: over the hard limit none
    # is (`blocked`); below it every model call is timed and its tokens counted (kb/usage).
    meter = admit(user)
    # The earlier questions go to the rewrite: an on-premises model only (kb/routing).
    query = search_query_for(question, earlier, meter.wrap(rewrite_model(model)))
    # The asking person's department glossaries: the terms mentioned widen the lexical search
    # and go to the model with the sources.
    glossary = terms_for_question(user, question, query)
    hits = search_passages(
        query,
        scope if scope is not None else access_scope_for(user),
        lexical_expansion=lexical_expansion(glossary),
        early=early if query == question else None,
    )
    sources = load_sources(hits)
    yield "sources", sources
    answer = Answer(question, "", "not_found", sources, search_query=query, notice=meter.notice)
    # Which endpoint may see these sources' classification, decided and audited before
    # anything is sent (kb/routing/policy.py).
    route = (
        meter.wrap_route(
            choose_endpoint(
                sources,
                model,
                chat_model_version(),
                actor=user,
                conversation=conversation.pk,
                with_glossary=bool(glossary),
            )
        )
        if sources and not meter.blocked
        else None
    )
    if not sources:
        answer.text = NOT_FOUND_TEXT
    elif route is None or route.model is None:
        answer.notice = (route.notice if route else meter.notice) or NOTICE_NO_MODEL
    else:
        answer.model = route.model_id
        answer.model_version = route.model_version
        streamed = False
        try:
            completion: Completion | None = None
            for item in route.stream(build_messages(question, sources, glossary)):
                if isinstance(item, Delta):
                    if item.kind == "answer" and answer.first_token_seconds is None:
                        answer.first_token_seconds = time.monotonic() - started
                    streamed = streamed or item.kind == "answer"
                    yield item.kind, item.text
                else:
                    completion = item
            if completion is None:
                raise LLMUnavailable("the model's stream ended without a reply")
            answer.model = completion.model or answer.model
            # After a fallback these name the on-premises endpoint that answered.
            answer.endpoint, answer.model_version = route.endpoint, route.model_version
            answer.reasoning = completion.reasoning
            answer.prompt_tokens = completion.prompt_tokens
            answer.completion_tokens = completion.completion_tokens
            answer.text, answer.cited = verify_citations(completion.answer, len(sources))
            if answer.text:
                answer.mode = "generated"
            else:
                answer.notice = NOTICE_EMPTY
        except LLMUnavailable as exc:
            logger.warning("LLM unavailable, answering extractively: %s", exc)
            answer.notice = NOTICE_STOPPED if streamed else NOTICE_UNAVAILABLE
    if sources and answer.mode != "generated":
        # The passages are the answer: no model produced it, so none is recorded with it.
        answer.mode, answer.model, answer.model_version = "extractive", "", ""
        answer.endpoint = ""
        answer.text, answer.cited = verify_citations(
            extractive_answer(sources, sentence_scorer(query)), len(sources)
        )
    answer.seconds = time.monotonic() - started
    _record(conversation, answer, hits, meter)
    yield "done", answer


def _record(
    conversation: Conversation, answer: Answer, hits: list[IndexHit], meter: Meter | None = None
) -> None:
    by_chunk = {h.chunk_id: h for h in hits}
    turn = Turn.objects.create(
        conversation=conversation,
        question=answer.question,
        search_query=answer.search_query,
        answer=answer.text,
        reasoning=answer.reasoning,
        mode=answer.mode,
        notice=answer.notice,
        model=answer.model,
        model_version=answer.model_version,
        sources=[_source_json(s, by_chunk.get(s.chunk_id)) for s in answer.sources],
        cited=answer.cited,
        prompt_tokens=answer.prompt_tokens,
        completion_tokens=answer.completion_tokens,
        first_token_seconds=answer.first_token_seconds,
        seconds=answer.seconds,
    )
    conversation.save(update_fields=["updated_at"])
    answer.conversation_id, answer.turn_id = conversation.pk, turn.pk
    if meter is not None:
        record_usage(meter, answer, turn)  # tokens and GPU-seconds per user, department, token
    record(
        "question.asked",
        actor=conversation.user,
        target=turn,
        documents={hit.document_id for hit in hits},
        details={
            "question": answer.question,
            "search_query": answer.search_query,
            "conversation": conversation.pk,
            "retrieved": [
                {"chunk": h.chunk_id, "version": h.version_id, "document": h.document_id}
                for h in hits
            ],
            "cited": [
                {"number": s.number, "chunk": s.chunk_id, "document": s.document_id}
                for s in answer.sources
                if s.number in answer.cited
            ],
            "mode": answer.mode,
            "model": answer.model,
            "model_version": answer.model_version,
            "endpoint": answer.endpoint,
            "answer_sha256": hashlib.sha256(answer.text.encode("utf-8")).hexdigest(),
            "seconds": round(answer.seconds, 3),
            "first_token_seconds": (
                round(answer.first_token_seconds, 3)
                if answer.first_token_seconds is not None
                else None
            ),
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.completion_tokens,
        },
    )
    observe_answer(answer)  # Prometheus: questions by mode/channel, tokens, latency


def answer_question(
    user: AnyUser,
    question: str,
    conversation_id: int | None = None,
    scope: AccessScope | None = None,
) -> Answer:
    for event, payload in stream_answer(user, question, conversation_id, scope):
        if event == "done":
            return payload  # type: ignore[no-any-return]  # json.loads of a cached answer of our own making
    raise RuntimeError("stream_answer ended without an answer")


def turn_for_history(turn: Turn, readable: set[int], reviewing: bool) -> dict[str, object]:
    """A turn as history shows it. The asker sees an old answer only while they can still
    read every document it drew on: access removed since then hides it (and its sources)
    from the very next request. An auditor reviewing the conversation sees it as it was."""
    documents = {int(s["document_id"]) for s in turn.sources if s.get("document_id")}
    withheld = not reviewing and not documents <= readable
    sources = [s for s in turn.sources if reviewing or int(s.get("document_id") or 0) in readable]
    titles = dict(Document.objects.filter(pk__in=documents).values_list("pk", "title"))
    return {
        "turn": turn,
        "withheld": withheld,
        "sources": [
            {
                **s,
                "title": titles.get(int(s.get("document_id") or 0), gettext("(deleted document)")),
            }
            for s in sources
        ],
    }
