"""The acts of asking, each decided here once, whichever door it came through.

The portal (kb/portal) and the REST API (kb/api) parse a request into a Reader (who acts, and
what they may read through that door) and the act's input, call one function here or in
kb/answering/documents.py or kb/answering/conversations.py, and render what it returns.
Access, the audit record and the usage meter are the act's business, never the door's.
"""

from __future__ import annotations

from collections.abc import Iterator

from inference.answering import Source
from kb.accounts.access import Reader
from kb.answering.answers import Answer, AnswerEvent, answer_events
from kb.answering.conversations import own_conversation
from kb.answering.retrieval import load_sources, search_passages
from kb.audit.trail import record
from kb.glossary.services import lexical_expansion, terms_for_question


def stream_answer(
    reader: Reader, question: str, conversation_id: int | None = None
) -> Iterator[AnswerEvent]:
    """Ask, with the answer streamed as it is written (kb/answering/answers.py names the
    events). A conversation that is not the asker's is refused now, before anything streams
    (NotReadable); what fails later ends the stream with the exception."""
    conversation = (
        None if conversation_id is None else own_conversation(reader.user, conversation_id)
    )
    return answer_events(reader, question, conversation)


def ask(reader: Reader, question: str, conversation_id: int | None = None) -> Answer:
    """Ask, and wait for the whole answer."""
    for event, payload in stream_answer(reader, question, conversation_id):
        if event == "done" and isinstance(payload, Answer):
            return payload
    raise RuntimeError("answering ended without an answer")


def search(reader: Reader, query: str) -> list[Source]:
    """Passages only, no model: the retrieval (and access filter) answers use, widened by the
    reader's department glossaries like a question (search.performed)."""
    expansion = lexical_expansion(terms_for_question(reader.user, query))
    sources = load_sources(search_passages(query, reader.scope, expansion))
    record(
        "search.performed",
        documents={source.document_id for source in sources},
        details={"query": query, "chunks": [source.chunk_id for source in sources]},
    )
    return sources
