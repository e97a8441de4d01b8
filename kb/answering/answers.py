"""The answer to one question: retrieval inside the reader's scope, then the model (streamed)
or the passages, then the turn recorded, audited and metered, once.

`answer_events` is the one path: it yields events as the answer is produced (sources, answer
and reasoning pieces, then the finished answer) and records the turn before the last one.
With no model configured, the model down, or the model cut off mid-answer, the answer
degrades to the best passages with a notice, never an error. The acts that call it (ask,
stream an answer) are in kb/answering/actions.py.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext, gettext_noop

from inference.answering import (
    Source,
    accept_rewrite,
    build_messages,
    extractive_answer,
    fallback_rewrite,
    is_follow_up,
    rewrite_messages,
    verify_citations,
)
from inference.llm import ChatModel, Completion, Delta, LLMUnavailable, ModelRestarting
from ingest.index import IndexHit
from kb.accounts.access import Reader
from kb.answering.models import Conversation, Turn
from kb.answering.retrieval import (
    load_sources,
    search_passages,
    sentence_scorer,
    start_question_embedding,
)
from kb.audit.trail import record
from kb.glossary.services import lexical_expansion, terms_for_question
from kb.ops.metrics import observe_answer
from kb.routing.clients import chat_model_version, get_chat_model
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
# the portal shows them in the reader's language (kb/portal/http.py for_reader, conversation.html).
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
NOTICE_RESTARTING = gettext_noop(
    "The language model is restarting; showing the most relevant passages. Ask again in a "
    "minute for a written answer."
)
NOTICE_UNAVAILABLE = gettext_noop(
    "The language model is unavailable; showing the most relevant passages."
)


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


# ("sources", [Source]), ("answer" or "reasoning", a piece of text), then ("done", Answer).
AnswerEvent = tuple[str, object]


def answer_events(
    reader: Reader, question: str, conversation: Conversation | None
) -> Iterator[AnswerEvent]:
    """The answer to `question` as events; the turn is recorded before "done" is yielded.
    `conversation`: the asker's own (checked by the caller), or None to start one."""
    user = reader.user
    if not user.is_authenticated:
        raise PermissionDenied("sign in to ask")
    started = time.monotonic()
    question = question.strip()
    follow_up = conversation is not None and is_follow_up(question)
    if conversation is None:
        conversation = Conversation.objects.create(user_id=int(user.pk), title=question[:200])
    # A question that opens a conversation, or stands alone, is searched as it is: start its
    # embedding now and do the database work below while the model runs. (A follow-up may be
    # rewritten first.)
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
        reader.scope,
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
            if streamed:
                answer.notice = NOTICE_STOPPED
            elif isinstance(exc, ModelRestarting):
                answer.notice = NOTICE_RESTARTING  # it is expected back on its own
            else:
                answer.notice = NOTICE_UNAVAILABLE
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
