"""Conversations are their asker's alone: the one ownership rule, and how a turn is shown.

Another person's conversation or answer is "not found" (NotReadable) with an access.denied
record, exactly like a document of another department; an auditor may review one, and that
review is itself audited (conversation.read_other).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext

from kb.accounts.access import AnyUser, Reader, is_auditor
from kb.answering.errors import NotReadable
from kb.answering.models import Conversation, Turn
from kb.audit.trail import denied, record
from kb.library.models import Document


def own_conversations(user: AnyUser) -> QuerySet[Conversation]:
    """The conversations a person may list and open: their own, nobody else's."""
    return Conversation.objects.filter(user_id=int(user.pk or 0))


def own_conversation(user: AnyUser, conversation_id: int) -> Conversation:
    """The asker's conversation by id; anyone else's is refused, never silently replaced."""
    conversation = own_conversations(user).filter(pk=conversation_id).first()
    if conversation is None:
        denied(("conversation", conversation_id), reason="not the asker's conversation")
        raise NotReadable("No such conversation.")
    return conversation


def own_turn(user: AnyUser, turn_id: int) -> Turn:
    """One of the asker's answers (to rate it): anyone else's is refused."""
    turn = (
        Turn.objects.filter(pk=turn_id, conversation__user_id=int(user.pk or 0))
        .select_related("conversation")
        .first()
    )
    if turn is None:
        denied(("turn", turn_id), reason="feedback on someone else's answer")
        raise NotReadable("No such answer.")
    return turn


@dataclass(frozen=True)
class TurnView:
    """A turn as history shows it: `withheld` hides an answer whose sources the reader can
    no longer read; `sources` are the readable ones, with their documents' titles."""

    turn: Turn
    withheld: bool
    sources: list[dict[str, Any]]


@dataclass(frozen=True)
class ConversationView:
    conversation: Conversation
    turns: list[TurnView]
    reviewing: bool  # an auditor reading someone else's conversation, as it was


def _document_ids(turn: Turn) -> set[int]:
    return {int(s["document_id"]) for s in turn.sources if s.get("document_id")}


def turn_views(turns: Iterable[Turn], readable: set[int], reviewing: bool) -> list[TurnView]:
    """The turns as history shows them. The asker sees an old answer only while they can
    still read every document it drew on: access removed since then hides it (and its
    sources) from the very next request. An auditor reviewing the conversation sees it as it
    was. The sources' titles are read in one query for all the turns."""
    turns = list(turns)
    cited = set().union(*(_document_ids(turn) for turn in turns))
    titles = dict(Document.objects.filter(pk__in=cited).values_list("pk", "title"))
    views = []
    for turn in turns:
        shown = [s for s in turn.sources if reviewing or int(s.get("document_id") or 0) in readable]
        views.append(
            TurnView(
                turn=turn,
                withheld=not reviewing and not _document_ids(turn) <= readable,
                sources=[
                    {
                        **s,
                        "title": titles.get(
                            int(s.get("document_id") or 0), gettext("(deleted document)")
                        ),
                    }
                    for s in shown
                ],
            )
        )
    return views


def read_conversation(
    reader: Reader, conversation_id: int, *, may_review: bool = False
) -> ConversationView:
    """Read a conversation: the asker's own, or, where the door allows it (`may_review`: the
    portal), an auditor's audited review of someone else's."""
    conversation = Conversation.objects.select_related("user").filter(pk=conversation_id).first()
    own = conversation is not None and conversation.user_id == reader.user.pk
    reviewing = may_review and conversation is not None and not own and is_auditor(reader.user)
    if conversation is None or not (own or reviewing):
        denied(("conversation", conversation_id), reason="not the asker's conversation")
        raise NotReadable("No such conversation.")
    if reviewing:
        record(
            "conversation.read_other",
            target=conversation,
            details={"owner": conversation.user.get_username(), "owner_id": conversation.user_id},
        )
    readable = set(reader.documents().values_list("pk", flat=True))
    turns = turn_views(conversation.turns.select_related("feedback"), readable, reviewing)
    return ConversationView(conversation, turns, reviewing)
