"""Asking as a signed-in person does in the portal: the acts of kb/answering/actions.py with
the person's whole Reader (what their memberships let them read)."""

from __future__ import annotations

from collections.abc import Iterator

from kb.accounts.access import AnyUser, reader_for
from kb.answering import actions
from kb.answering.answers import Answer, AnswerEvent


def answer_question(user: AnyUser, question: str, conversation_id: int | None = None) -> Answer:
    return actions.ask(reader_for(user), question, conversation_id)


def stream_answer(
    user: AnyUser, question: str, conversation_id: int | None = None
) -> Iterator[AnswerEvent]:
    return actions.stream_answer(reader_for(user), question, conversation_id)
