"""The asker's history: search, delete, export, feedback; others' get 404 and a denial."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from kb.answering.models import Conversation, Feedback, Turn
from kb.audit.models import AuditRecord

pytestmark = pytest.mark.django_db


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def conversation(
    user: User, title: str, question: str, answer: str = "The answer [1]."
) -> Conversation:
    chat = Conversation.objects.create(user=user, title=title)
    Turn.objects.create(
        conversation=chat,
        question=question,
        search_query=question,
        answer=answer,
        mode="extractive",
        sources=[],
    )
    return chat


def test_history_is_searchable_and_lists_with_bounded_queries(alice: User) -> None:
    for n in range(5):
        conversation(alice, f"Travel {n}", f"hotel limit in city {n}?")
    conversation(alice, "Invoices", "who approves invoices?")
    client = client_for(alice)
    page = client.get(reverse("portal:conversations"), {"q": "invoices"}).content.decode()
    assert "Invoices" in page and "Travel 0" not in page
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("portal:conversations"))
    for n in range(20):
        conversation(alice, f"More {n}", "q?")
    with CaptureQueriesContext(connection) as many:
        client.get(reverse("portal:conversations"))
    assert len(many.captured_queries) == len(few.captured_queries)


def test_only_the_owner_deletes_and_exports(alice: User, erin: User) -> None:
    chat = conversation(alice, "Mine", "What is the travel policy?", "Book economy [1].")
    intruder = client_for(erin)
    for name in ("portal:conversation_export",):
        assert intruder.get(reverse(name, args=[chat.pk])).status_code == 404
    assert intruder.post(reverse("portal:conversation_delete", args=[chat.pk])).status_code == 404
    assert Conversation.objects.filter(pk=chat.pk).exists()
    assert AuditRecord.objects.filter(action="access.denied", actor="erin").count() == 2
    owner = client_for(alice)
    markdown = owner.get(reverse("portal:conversation_export", args=[chat.pk]))
    assert markdown["Content-Disposition"].startswith("attachment")
    assert "## What is the travel policy?" in markdown.content.decode()
    as_json = json.loads(
        owner.get(reverse("portal:conversation_export", args=[chat.pk]), {"format": "json"}).content
    )
    assert as_json["turns"][0]["answer"] == "Book economy [1]."
    assert AuditRecord.objects.filter(action="conversation.exported").count() == 2
    assert owner.post(reverse("portal:conversation_delete", args=[chat.pk])).status_code == 302
    assert not Conversation.objects.filter(pk=chat.pk).exists()


def test_feedback_on_own_answers_only(alice: User, erin: User) -> None:
    chat = conversation(alice, "Mine", "q?")
    turn = chat.turns.get()
    url = reverse("portal:feedback", args=[turn.pk])
    assert client_for(erin).post(url, {"rating": "-1"}).status_code == 404
    owner = client_for(alice)
    assert owner.post(url, {"rating": "0"}, HTTP_ACCEPT="application/json").status_code == 400
    response = owner.post(
        url, {"rating": "-1", "comment": "Wrong city"}, HTTP_ACCEPT="application/json"
    )
    assert response.json() == {"turn": turn.pk, "rating": -1, "comment": "Wrong city"}
    owner.post(url, {"rating": "1"}, HTTP_ACCEPT="application/json")  # changed their mind
    feedback = Feedback.objects.get(turn=turn)
    assert feedback.rating == 1 and feedback.comment == ""


def test_dashboard_for_auditors_only_with_bounded_queries(alice: User, erin: User) -> None:
    from django.contrib.auth.models import Group

    from kb.accounts.models import AUDITORS_GROUP
    from kb.audit.trail import record

    auditor = User.objects.create_user("audrey", password="pw-123456789")
    auditor.groups.add(Group.objects.get_or_create(name=AUDITORS_GROUP)[0])
    assert client_for(erin).get(reverse("portal:dashboard")).status_code == 404
    chat = conversation(alice, "Mine", "q?")
    Feedback.objects.create(turn=chat.turns.get(), rating=-1)
    record("question.asked", actor=alice)
    client = client_for(auditor)
    with CaptureQueriesContext(connection) as few:
        page = client.get(reverse("portal:dashboard"))
    assert page.status_code == 200
    text = page.content.decode()
    assert "<svg" in text and "Finance" in text  # alice's question counted for Finance
    assert 'class="series-0"' in text  # today's bar, in Finance's colour
    assert "100" in text  # one answer, rated not helpful: 100 % that day
    for n in range(10):
        conversation(alice, f"c{n}", "q?")
        record("question.asked", actor=alice)
    with CaptureQueriesContext(connection) as many:
        client.get(reverse("portal:dashboard"))
    assert len(many.captured_queries) == len(few.captured_queries)


def test_conversation_page_offers_export_delete_and_feedback(alice: User) -> None:
    chat = conversation(alice, "Mine", "q?")
    turn = chat.turns.get()
    Feedback.objects.create(turn=turn, rating=-1)
    page = client_for(alice).get(reverse("portal:conversation", args=[chat.pk])).content.decode()
    assert reverse("portal:conversation_export", args=[chat.pk]) in page
    assert reverse("portal:conversation_delete", args=[chat.pk]) in page
    assert reverse("portal:feedback", args=[turn.pk]) in page
    assert 'value="-1" class="secondary small" aria-pressed="true"' in page  # their verdict
    # Without JavaScript the feedback form posts and comes back to the conversation.
    back = client_for(alice).post(reverse("portal:feedback", args=[turn.pk]), {"rating": "1"})
    assert back.status_code == 302 and back["Location"].endswith(f"/conversations/{chat.pk}/")


def test_suggested_follow_ups_come_from_the_sources() -> None:
    from inference.answering import Source
    from kb.answering.answers import Answer, suggest_follow_ups

    def source(number: int, title: str, section: str) -> Source:
        return Source(number, number, number, title, None, section, "text", 0.5)

    answer = Answer(
        "Who approves invoices?",
        "The CFO [2].",
        "generated",
        sources=[source(1, "Travel", "Travel > Hotels"), source(2, "Finance", "Approvals")],
        cited=[2],
    )
    assert suggest_follow_ups(answer) == [
        "What else does “Approvals” say?",
        "Summarize “Finance”",
        "What else does “Hotels” say?",
    ]
    assert suggest_follow_ups(Answer("q", "", "not_found")) == []
