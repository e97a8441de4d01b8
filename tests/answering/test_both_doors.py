"""Each rule of kb/answering, driven through both doors as the same person: the portal (a
signed-in session) and the REST API (a token acting on that person's behalf). The door
changes how the outcome is said, never the outcome, the access decision or the audit record.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from kb.accounts.models import Department
from kb.answering.models import Conversation
from kb.audit.models import AuditRecord
from kb.library.models import Collection, Document
from tests.api.conftest import api, service_account, token_for
from tests.asking import answer_question
from tests.ingesting import ingest_text

pytestmark = pytest.mark.django_db(transaction=True)

POLICY = (
    "Travel policy. Hotels in Munich are reimbursed up to 180 EUR per night. "
    "Economy class is booked for flights under six hours."
)
QUESTION = "What is the hotel limit in Munich?"


class Doors:
    """The same person through the portal and through the API."""

    def __init__(self, user: User, departments: dict[str, Department]) -> None:
        self.user = user
        self.portal = Client()
        self.portal.force_login(user)
        account = service_account("integration", departments["finance"])
        token = token_for(account, ["search", "ask", "on_behalf"])
        self.api: APIClient = api(token, on_behalf=user.get_username())


def records(action: str, user: User, since: int) -> list[AuditRecord]:
    return list(
        AuditRecord.objects.filter(action=action, actor_id=user.pk, seq__gt=since).order_by("seq")
    )


def what(record: AuditRecord) -> dict[str, Any]:
    """A record's details without the door it came through (`via`: web or api)."""
    return {k: v for k, v in record.details.items() if k != "via"}


def last_seq() -> int:
    latest = AuditRecord.objects.order_by("-seq").first()
    return latest.seq if latest else 0


@pytest.fixture
def policies(fresh_index: None, departments: dict[str, Department]) -> Document:
    collection = Collection.objects.create(
        name="Policies", department=departments["finance"], allow_download=False
    )
    return Document.objects.get(pk=ingest_text(collection, "travel.md", POLICY))


@pytest.fixture
def frank_doors(frank: User, departments: dict[str, Department]) -> Doors:
    return Doors(frank, departments)


def test_downloads_off_is_refused_and_audited_alike(policies: Document, frank_doors: Doors) -> None:
    since = last_seq()
    portal = frank_doors.portal.get(reverse("portal:download", args=[policies.pk]))
    through_api = frank_doors.api.get(reverse("api:download", args=[policies.pk]))
    assert portal.status_code == through_api.status_code == 403
    refusals = records("access.denied", frank_doors.user, since)
    assert [r.details["reason"] for r in refusals] == ["downloads are off for this collection"] * 2
    assert {r.target_id for r in refusals} == {str(policies.pk)}
    assert [r.details["via"] for r in refusals] == ["web", "api"]
    assert not records("document.downloaded", frank_doors.user, since)


def test_a_download_is_the_same_file_and_the_same_record(
    policies: Document, frank_doors: Doors
) -> None:
    Collection.objects.filter(pk=policies.collection_id).update(allow_download=True)
    since = last_seq()
    portal = frank_doors.portal.get(reverse("portal:download", args=[policies.pk]))
    through_api = frank_doors.api.get(reverse("api:download", args=[policies.pk]))
    assert portal.status_code == through_api.status_code == 200
    assert b"".join(portal.streaming_content) == b"".join(through_api.streaming_content)  # type: ignore[attr-defined]  # a FileResponse streams
    downloads = records("document.downloaded", frank_doors.user, since)
    assert [what(r) for r in downloads] == [what(downloads[0])] * 2
    assert [r.details["via"] for r in downloads] == ["web", "api"]
    assert downloads[0].details["version"] == 1 and len(downloads[0].details["sha256"]) == 64

    bad = {"version": "one"}
    portal_bad = frank_doors.portal.get(reverse("portal:download", args=[policies.pk]), bad)
    api_bad = frank_doors.api.get(reverse("api:download", args=[policies.pk]), bad)
    assert portal_bad.status_code == api_bad.status_code == 400
    missing = {"version": "7"}
    portal_missing = frank_doors.portal.get(reverse("portal:download", args=[policies.pk]), missing)
    api_missing = frank_doors.api.get(reverse("api:download", args=[policies.pk]), missing)
    assert portal_missing.status_code == api_missing.status_code == 404


def test_another_departments_document_is_not_found_through_either_door(
    policies: Document, erin: User, departments: dict[str, Department]
) -> None:
    doors = Doors(erin, departments)
    since = last_seq()
    for url in (reverse("portal:document", args=[policies.pk]),):
        assert doors.portal.get(url).status_code == 404
    assert doors.api.get(reverse("api:document", args=[policies.pk])).status_code == 404
    assert doors.portal.get(reverse("portal:download", args=[policies.pk])).status_code == 404
    assert doors.api.get(reverse("api:download", args=[policies.pk])).status_code == 404
    refusals = records("access.denied", erin, since)
    assert len(refusals) == 4
    # Both doors name the document asked for and whose it is.
    assert {(r.target_type, r.target_id) for r in refusals} == {("document", str(policies.pk))}
    assert {r.department_id for r in refusals} == {departments["finance"].pk}


def test_passage_search_finds_the_same_passages_and_writes_the_same_record(
    policies: Document, frank_doors: Doors
) -> None:
    since = last_seq()
    page = frank_doors.portal.get(reverse("portal:search"), {"q": "hotel limit Munich"})
    found = frank_doors.api.post(reverse("api:search"), {"query": "hotel limit Munich"})
    assert page.status_code == found.status_code == 200
    api_chunks = [p["chunk_id"] for p in found.json()["passages"]]
    assert api_chunks and "180 EUR" in found.json()["passages"][0]["text"]
    searches = records("search.performed", frank_doors.user, since)
    assert len(searches) == 2
    assert what(searches[0]) == what(searches[1])
    assert searches[0].details["chunks"] == api_chunks
    assert "180 EUR" in page.content.decode()


def test_someone_elses_conversation_is_refused_alike(
    policies: Document, frank: User, alice: User, departments: dict[str, Department]
) -> None:
    theirs = answer_question(alice, QUESTION)
    assert theirs.conversation_id is not None
    doors = Doors(frank, departments)
    since = last_seq()
    follow_up = {"question": "And per night?", "conversation": theirs.conversation_id}
    assert doors.portal.post(reverse("portal:ask_stream"), follow_up).status_code == 404
    assert doors.portal.post(reverse("portal:ask"), follow_up).status_code == 404
    assert doors.api.post(reverse("api:ask"), follow_up, format="json").status_code == 404
    assert (
        doors.api.post(reverse("api:ask"), {**follow_up, "stream": True}, format="json").status_code
        == 404
    )
    conversation_url = reverse("api:conversation", args=[theirs.conversation_id])
    assert doors.api.get(conversation_url).status_code == 404
    page = reverse("portal:conversation", args=[theirs.conversation_id])
    assert doors.portal.get(page).status_code == 404
    refusals = records("access.denied", frank, since)
    assert [r.details["reason"] for r in refusals] == ["not the asker's conversation"] * 6
    # Nothing was asked, and Alice's conversation is as it was.
    assert not records("question.asked", frank, since)
    assert Conversation.objects.get(pk=theirs.conversation_id).turns.count() == 1


def _events(body: bytes) -> list[tuple[str, Any]]:
    found = []
    for block in body.decode().strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        found.append((lines["event"], json.loads(lines["data"])))
    return found


def test_a_streamed_answer_is_the_same_events_through_both_doors(
    policies: Document, frank_doors: Doors
) -> None:
    portal = frank_doors.portal.post(reverse("portal:ask_stream"), {"question": QUESTION})
    through_api = frank_doors.api.post(
        reverse("api:ask"), {"question": QUESTION, "stream": True}, format="json"
    )
    assert (
        portal["Content-Type"]
        == through_api["Content-Type"]
        == ("text/event-stream; charset=utf-8")
    )
    assert portal["X-Accel-Buffering"] == through_api["X-Accel-Buffering"] == "no"
    portal_events = _events(b"".join(portal.streaming_content))  # type: ignore[attr-defined]  # a streaming response
    api_events = _events(b"".join(through_api.streaming_content))  # type: ignore[attr-defined]  # a streaming response
    # No model is configured: the passages are the answer, through either door.
    assert [name for name, _ in portal_events] == [name for name, _ in api_events]
    assert [name for name, _ in api_events] == ["sources", "done"]
    portal_done, api_done = portal_events[-1][1], api_events[-1][1]
    assert portal_done["mode"] == api_done["mode"] == "extractive"
    assert portal_done["cited"] == api_done["cited"]
    assert "180 EUR" in api_done["answer"] and "180 EUR" in portal_done["html"]
    assert [s["title"] for s in portal_events[0][1]] == [s["title"] for s in api_events[0][1]]
    asked = AuditRecord.objects.filter(action="question.asked", actor_id=frank_doors.user.pk)
    assert asked.count() == 2
