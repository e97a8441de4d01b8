"""The auditor pages: only auditors see them (others get 404, recorded as access.denied),
filters select exactly the matching records, the document page names exactly the people who
saw a document, verification finds an edited record, exports are exact and audited, and
hostile text from the trail is escaped."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from kb.accounts.models import AUDITORS_GROUP, Department
from kb.audit import exports, trail
from kb.audit.models import AuditRecord
from kb.audit.trail import record
from kb.library.models import Collection, Document

pytestmark = pytest.mark.django_db


@pytest.fixture
def auditor(db: None) -> User:
    user = User.objects.create_user("audrey", password="audrey-password-1")
    group, _ = Group.objects.get_or_create(name=AUDITORS_GROUP)
    user.groups.add(group)
    return user


@pytest.fixture
def auditor_client(auditor: User) -> Client:
    client = Client()
    client.force_login(auditor)
    return client


@pytest.fixture(autouse=True)
def _private_checkpoints(tmp_path: Path, settings: Any) -> None:
    settings.AUDIT_CHECKPOINT_DIR = tmp_path / "checkpoints"
    settings.AUDIT_SIGNING_KEY_FILE = tmp_path / "signing-key.pem"


def _asked(user: User, question: str, retrieved: list[int], cited: list[int]) -> AuditRecord:
    """A question.asked record shaped like the one kb/answering/answers.py writes."""
    return record(
        "question.asked",
        actor=user,
        target=("turn", 1),
        documents=retrieved,
        details={
            "question": question,
            "retrieved": [{"chunk": 10 + d, "version": d, "document": d} for d in retrieved],
            "cited": [
                {"number": n, "chunk": 10 + d, "document": d} for n, d in enumerate(cited, 1)
            ],
            "mode": "generated",
        },
    )


def _at(moment: datetime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trail, "timezone", SimpleNamespace(now=lambda: moment))


def _seqs(response: Any) -> list[int]:
    return [row.entry.seq for row in response.context["rows"]]


def _last(action: str) -> AuditRecord:
    entry = AuditRecord.objects.filter(action=action).order_by("-seq").first()
    assert entry is not None, f"no {action} record"
    return entry


# --------------------------------------------------------------------------------------------
# Who may see the pages


def test_anonymous_is_sent_to_sign_in(db: None) -> None:
    response = Client().get("/audit/?action=auth.login")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert "next=/audit/" in response["Location"]


def test_non_auditor_gets_404_and_the_attempt_is_recorded(
    frank: User, alice: User, finance_collection: Collection
) -> None:
    entry = _asked(alice, "travel?", [1], [1])
    client = Client()
    client.force_login(frank)
    denied_before = AuditRecord.objects.filter(action="access.denied").count()
    urls = [
        reverse("audit:records"),
        reverse("audit:record", args=[entry.seq]),
        reverse("audit:record", args=[999999]),
        reverse("audit:document", args=[1]),
        reverse("audit:verify"),
        reverse("audit:export") + "?format=jsonl",
    ]
    for url in urls:
        assert client.get(url).status_code == 404, url
    assert client.post(reverse("audit:verify")).status_code == 404
    denials = list(
        AuditRecord.objects.filter(action="access.denied").order_by("seq")[denied_before:]
    )
    assert len(denials) == len(urls) + 1
    for denial in denials:
        assert denial.actor_id == frank.pk and denial.actor == "frank"
        assert denial.outcome == "denied"
        assert (denial.target_type, denial.target_id) == ("audit", "trail")
        assert denial.details["reason"] == "not an auditor"
    # Nothing was exported, verified or viewed.
    assert not AuditRecord.objects.filter(action__startswith="audit.").exists()


def test_staff_without_the_auditor_group_is_refused(db: None) -> None:
    staff = User.objects.create_user("stan", password="stan-password-1", is_staff=True)
    client = Client()
    client.force_login(staff)
    assert client.get(reverse("audit:records")).status_code == 404


def test_superuser_is_an_auditor(db: None) -> None:
    root = User.objects.create_superuser("root", password="root-password-1")
    client = Client()
    client.force_login(root)
    assert client.get(reverse("audit:records")).status_code == 200


# --------------------------------------------------------------------------------------------
# The record list


def test_auditor_sees_records_newest_first_and_the_view_is_recorded(
    auditor: User, auditor_client: Client, frank: User, erin: User
) -> None:
    first = _asked(frank, "What is the travel allowance?", [1], [])
    second = record("auth.login_failed", outcome="failure", actor_name="mallory")
    response = auditor_client.get(reverse("audit:records"))
    assert response.status_code == 200
    seqs = _seqs(response)
    assert seqs == sorted(seqs, reverse=True)
    assert {first.seq, second.seq} <= set(seqs)
    html = response.content.decode()
    assert "What is the travel allowance?" in html
    assert "Sign-in failed" in html
    assert reverse("audit:record", args=[first.seq]) in html
    viewed = _last("audit.viewed")
    assert viewed.actor_id == auditor.pk
    assert viewed.details["filters"] == {}
    # Once per page view: the view's own record appears on the next view.
    assert viewed.seq > max(seqs)
    assert viewed.seq in _seqs(auditor_client.get(reverse("audit:records")))


def test_filters_select_exactly_the_matching_records(
    auditor_client: Client,
    frank: User,
    erin: User,
    alice: User,
    departments: dict[str, Department],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _at(datetime(2024, 3, 1, 9, 0, tzinfo=UTC), monkeypatch)
    frank_march = _asked(frank, "march question", [7], [7])
    _at(datetime(2024, 3, 5, 23, 59, tzinfo=UTC), monkeypatch)
    erin_march = _asked(erin, "engineering question", [8], [])
    _at(datetime(2024, 4, 2, 12, 0, tzinfo=UTC), monkeypatch)
    frank_april = record("document.viewed", actor=frank, documents=[7], target=("document", 7))
    erin_denied = trail.denied(("document", 7), reason="not readable")  # no actor: system
    alice_login = record("auth.login", actor=alice)
    monkeypatch.undo()

    def seqs(**params: str | int) -> set[int]:
        response = auditor_client.get(reverse("audit:records"), params)
        assert response.status_code == 200
        assert response.context["form"].is_valid(), response.context["form"].errors
        return set(_seqs(response))

    mine = {frank_march.seq, erin_march.seq, frank_april.seq, erin_denied.seq, alice_login.seq}

    assert seqs(person="frank") & mine == {frank_march.seq, frank_april.seq}
    assert seqs(person="FRANK") & mine == {frank_march.seq, frank_april.seq}
    assert seqs(person=str(erin.pk)) & mine == {erin_march.seq}
    assert seqs(action="question.asked") & mine == {frank_march.seq, erin_march.seq}
    assert seqs(department=departments["engineering"].pk) & mine == {erin_march.seq}
    assert seqs(department=departments["finance"].pk) & mine == {
        frank_march.seq,
        frank_april.seq,
        alice_login.seq,
    }
    assert seqs(document=7) == {frank_march.seq, frank_april.seq}
    assert seqs(outcome="denied") & mine == {erin_denied.seq}
    assert seqs(since="2024-03-01", until="2024-03-05") == {frank_march.seq, erin_march.seq}
    assert seqs(since="2024-03-02", until="2024-03-31") == {erin_march.seq}
    assert seqs(since="2024-04-01", until="2024-04-30") == {
        frank_april.seq,
        erin_denied.seq,
        alice_login.seq,
    }
    assert seqs(text="engineering") & mine == {erin_march.seq}
    assert seqs(person="frank", action="document.viewed", until="2024-12-31") == {frank_april.seq}
    viewed = _last("audit.viewed")
    assert viewed.details["filters"] == {
        "person": "frank",
        "action": "document.viewed",
        "until": "2024-12-31",
    }


def test_invalid_filters_show_errors_and_no_records(auditor_client: Client, frank: User) -> None:
    _asked(frank, "anything", [1], [])
    response = auditor_client.get(
        reverse("audit:records"), {"since": "2024-05-01", "until": "2024-04-01"}
    )
    assert response.status_code == 200
    assert _seqs(response) == []
    assert "The start date is after the end date." in response.content.decode()
    response = auditor_client.get(reverse("audit:records"), {"action": "no.such.action"})
    assert _seqs(response) == []
    assert "action" in response.context["form"].errors


def test_the_list_pages_by_fifty_in_both_directions(auditor_client: Client, frank: User) -> None:
    made = [record("search.performed", actor=frank, details={"n": i}).seq for i in range(120)]
    params = {"action": "search.performed"}
    first = auditor_client.get(reverse("audit:records"), params)
    assert _seqs(first) == made[::-1][:50]
    page = first.context["page"]
    assert page.newer is None and page.older == made[70]
    second = auditor_client.get(reverse("audit:records"), {**params, "before": page.older})
    assert _seqs(second) == made[::-1][50:100]
    third = auditor_client.get(
        reverse("audit:records"), {**params, "before": second.context["page"].older}
    )
    assert _seqs(third) == made[::-1][100:]
    assert third.context["page"].older is None
    back = auditor_client.get(
        reverse("audit:records"), {**params, "after": third.context["page"].newer}
    )
    assert _seqs(back) == _seqs(second)
    # The links keep the filters.
    assert "action=search.performed&amp;before=" in first.content.decode()


def test_the_list_runs_a_fixed_number_of_queries(auditor_client: Client, frank: User) -> None:
    for i in range(60):
        _asked(frank, f"question {i}", [1, 2], [1])
    auditor_client.get(reverse("audit:records"))  # warm the session and the group lookups
    with CaptureQueriesContext(connection) as few:
        auditor_client.get(reverse("audit:records"))
    for i in range(60):
        _asked(frank, f"question {i}", [1, 2], [1])
    with CaptureQueriesContext(connection) as more:
        auditor_client.get(reverse("audit:records"))
    assert len(more.captured_queries) == len(few.captured_queries)


# --------------------------------------------------------------------------------------------
# One record


def test_record_detail_shows_every_field_and_links_the_documents(
    auditor: User, auditor_client: Client, frank: User, finance_collection: Collection
) -> None:
    document = Document.objects.create(
        collection=finance_collection, path="policies/travel.pdf", title="Travel policy"
    )
    entry = _asked(frank, "How much per diem?", [document.pk, 424242], [document.pk])
    response = auditor_client.get(reverse("audit:record", args=[entry.seq]))
    assert response.status_code == 200
    html = response.content.decode()
    for value in (entry.hash, entry.prev_hash, "frank", "Finance", "How much per diem?"):
        assert value in html
    assert reverse("audit:document", args=[document.pk]) in html
    assert "Travel policy" in html
    assert reverse("audit:document", args=[424242]) in html
    assert "no longer exists" in html
    assert "&quot;retrieved&quot;: [" in html  # the details, pretty-printed
    assert response.context["own_hash_ok"] is True
    assert response.context["link_ok"] is True
    viewed = _last("audit.viewed")
    assert (viewed.target_type, viewed.target_id) == ("auditrecord", str(entry.seq))
    assert auditor_client.get(reverse("audit:record", args=[entry.seq + 1000])).status_code == 404


# --------------------------------------------------------------------------------------------
# Who saw a document


def test_document_page_lists_exactly_who_saw_the_document(
    auditor_client: Client,
    alice: User,
    frank: User,
    erin: User,
    finance_collection: Collection,
) -> None:
    travel = Document.objects.create(
        collection=finance_collection, path="policies/travel.pdf", title="Travel policy"
    )
    other = Document.objects.create(
        collection=finance_collection, path="policies/expenses.pdf", title="Expenses"
    )
    record("document.uploaded", actor=alice, documents=[travel.pk], details={"path": "x"})
    frank_cited = _asked(frank, "per diem in Paris?", [travel.pk, other.pk], [travel.pk])
    frank_again = _asked(frank, "hotel limit?", [travel.pk], [])
    alice_not_cited = _asked(alice, "expense deadline?", [travel.pk, other.pk], [other.pk])
    alice_viewed = record("document.viewed", actor=alice, documents=[travel.pk])
    erin_other = record("document.downloaded", actor=erin, documents=[other.pk])
    _asked(erin, "unrelated", [other.pk], [other.pk])

    response = auditor_client.get(reverse("audit:document", args=[travel.pk]))
    assert response.status_code == 200
    people = {p.actor: p for p in response.context["people"]}
    assert set(people) == {"frank", "alice"}
    assert (people["frank"].asked, people["frank"].cited, people["frank"].viewed) == (2, 1, 0)
    assert (people["alice"].asked, people["alice"].cited, people["alice"].viewed) == (1, 0, 1)
    assert people["frank"].departments == ["Finance"]
    assert people["frank"].first == frank_cited.at and people["frank"].last == frank_again.at
    rows = response.context["rows"]
    assert [r.entry.seq for r in rows] == [
        alice_viewed.seq,
        alice_not_cited.seq,
        frank_again.seq,
        frank_cited.seq,
    ]
    assert [r.cited for r in rows] == [None, False, False, True]
    html = response.content.decode()
    assert "Travel policy" in html and "per diem in Paris?" in html

    other_page = auditor_client.get(reverse("audit:document", args=[other.pk]))
    people = {p.actor: p for p in other_page.context["people"]}
    assert set(people) == {"frank", "alice", "erin"}
    assert (people["erin"].asked, people["erin"].cited, people["erin"].downloaded) == (1, 1, 1)
    assert erin_other.seq in [r.entry.seq for r in other_page.context["rows"]]
    viewed = _last("audit.viewed")
    assert (viewed.target_type, viewed.target_id) == ("document", str(other.pk))


def test_document_page_works_for_a_deleted_document(
    auditor_client: Client, frank: User, finance_collection: Collection
) -> None:
    document = Document.objects.create(
        collection=finance_collection, path="secret/plan.pdf", title="The plan"
    )
    document_id = document.pk
    _asked(frank, "what is the plan?", [document_id], [document_id])
    record(
        "document.deleted",
        target=("document", document_id),
        documents=[document_id],
        details={"path": "secret/plan.pdf", "versions": 1},
    )
    document.delete()
    response = auditor_client.get(reverse("audit:document", args=[document_id]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "no longer exists" in html and "secret/plan.pdf" in html
    assert [p.actor for p in response.context["people"]] == ["frank"]
    assert response.context["people"][0].cited == 1

    never = auditor_client.get(reverse("audit:document", args=[987654]))
    assert never.status_code == 200
    assert "The trail holds no record of this document." in never.content.decode()


# --------------------------------------------------------------------------------------------
# Verification


def test_verify_reports_ok_then_finds_an_edited_record(
    auditor: User, auditor_client: Client, frank: User
) -> None:
    _asked(frank, "first", [1], [])
    victim = _asked(frank, "second", [2], [2])
    _asked(frank, "third", [3], [])

    page = auditor_client.get(reverse("audit:verify"))
    assert page.status_code == 200 and page.context["report"] is None
    assert not AuditRecord.objects.filter(action="audit.verified").exists()

    response = auditor_client.post(reverse("audit:verify"))
    assert response.status_code == 200
    report = response.context["report"]
    assert report.ok, report.problems
    assert "OK:" in response.content.decode()
    verified = _last("audit.verified")
    assert verified.details["ok"] is True and verified.details["problems"] == 0
    assert verified.actor_id == auditor.pk and verified.outcome == "success"
    assert "OK:" in auditor_client.get(reverse("audit:verify")).content.decode()

    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        try:
            cursor.execute(
                "UPDATE audit_auditrecord SET actor = %s WHERE seq = %s", ["mallory", victim.seq]
            )
        finally:
            cursor.execute("SET session_replication_role = origin")

    response = auditor_client.post(reverse("audit:verify"))
    report = response.context["report"]
    assert not report.ok
    assert ("edited", victim.seq) in {(p.kind, p.seq) for p in report.problems}
    html = response.content.decode()
    assert "FAILED" in html and "edited" in html
    assert f"#{victim.seq} was changed after it was written" in html
    verified = _last("audit.verified")
    assert verified.details["ok"] is False and verified.details["problems"] >= 1
    assert verified.outcome == "failure"

    detail = auditor_client.get(reverse("audit:record", args=[victim.seq]))
    assert detail.context["own_hash_ok"] is False
    assert "changed after it was written" in detail.content.decode()


def test_a_bad_checkpoint_signature_is_a_failed_verification(
    auditor_client: Client, frank: User, settings: Any
) -> None:
    entry = _asked(frank, "q", [1], [])
    directory = Path(settings.AUDIT_CHECKPOINT_DIR)
    directory.mkdir(parents=True)
    forged = {"seq": entry.seq, "hash": entry.hash, "at": "2024-01-01T00:00:00+00:00"}
    (directory / "checkpoints.jsonl").write_text(json.dumps({**forged, "sig": "AAAA"}) + "\n")
    response = auditor_client.post(reverse("audit:verify"))
    report = response.context["report"]
    assert not report.ok
    assert report.problems[0].kind == "signature"
    assert "the signature does not match" in response.content.decode()
    assert _last("audit.verified").details["ok"] is False


# --------------------------------------------------------------------------------------------
# Export


def _lines(response: Any) -> list[str]:
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.endswith("\n")
    return body.split("\n")[:-1]


def test_export_json_lines_holds_exactly_the_filtered_records_and_is_audited(
    auditor: User, auditor_client: Client, frank: User, erin: User
) -> None:
    wanted = [
        _asked(frank, "line one\nline two", [1], []),
        _asked(frank, '{"seq": 1, "action": "forged"}', [2], [2]),
    ]
    _asked(erin, "not wanted", [1], [])
    record("document.viewed", actor=frank, documents=[1])
    params = {"person": "frank", "action": "question.asked", "format": "jsonl"}
    response = auditor_client.get(reverse("audit:export"), params)
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("application/x-ndjson")
    assert response["Content-Disposition"].startswith("attachment; filename=")
    assert response["Content-Disposition"].endswith('.jsonl"')
    exported = _last("audit.exported")
    lines = _lines(response)
    parsed = [json.loads(line) for line in lines]
    assert [p["seq"] for p in parsed] == [w.seq for w in wanted]
    assert parsed[0] == json.loads(json.dumps(wanted[0].as_export_dict()))
    assert parsed[0]["details"]["question"] == "line one\nline two"
    assert exported.actor_id == auditor.pk
    assert exported.details["filters"] == {"person": "frank", "action": "question.asked"}
    assert exported.details["format"] == "jsonl"


def test_export_cef_lines(auditor_client: Client, frank: User, erin: User) -> None:
    denial = trail.record(
        "access.denied", outcome="denied", actor=erin, details={"reason": "a|b=c\nd"}
    )
    _asked(frank, "q", [1], [])
    response = auditor_client.get(reverse("audit:export"), {"outcome": "denied", "format": "cef"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert response["Content-Disposition"].endswith('.cef"')
    lines = _lines(response)
    assert len(lines) == 1
    header = lines[0].split("|")
    assert header[0] == "CEF:0" and header[4] == "access.denied"
    assert f"cn1={denial.seq} " in lines[0] and "suser=erin" in lines[0]
    assert _last("audit.exported").details == {
        "filters": {"outcome": "denied"},
        "format": "cef",
        "via": "web",
    }


def test_export_streams_in_batches(
    auditor_client: Client, frank: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exports, "EXPORT_BATCH", 7)
    made = [record("search.performed", actor=frank, details={"n": i}).seq for i in range(30)]
    response = auditor_client.get(
        reverse("audit:export"), {"action": "search.performed", "format": "jsonl"}
    )
    assert [json.loads(line)["seq"] for line in _lines(response)] == made


def test_export_form_and_bad_format(auditor_client: Client) -> None:
    form_page = auditor_client.get(reverse("audit:export"))
    assert form_page.status_code == 200
    assert "JSON lines" in form_page.content.decode()
    assert not AuditRecord.objects.filter(action="audit.exported").exists()
    bad = auditor_client.get(reverse("audit:export"), {"format": "xml"})
    assert bad.status_code == 400
    assert not AuditRecord.objects.filter(action="audit.exported").exists()


# --------------------------------------------------------------------------------------------
# Hostile text


def test_hostile_question_text_is_escaped_everywhere(
    auditor_client: Client, frank: User, finance_collection: Collection
) -> None:
    document = Document.objects.create(
        collection=finance_collection, path="a.pdf", title="<b>bold title</b>"
    )
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    entry = _asked(frank, hostile, [document.pk], [document.pk])
    pages = [
        auditor_client.get(reverse("audit:records")),
        auditor_client.get(reverse("audit:record", args=[entry.seq])),
        auditor_client.get(reverse("audit:document", args=[document.pk])),
    ]
    for response in pages:
        html = response.content.decode()
        assert "<script>alert" not in html
        assert "<img src=x" not in html
        assert "&lt;script&gt;" in html
    assert "<b>bold title</b>" not in pages[2].content.decode()
    assert "&lt;b&gt;bold title&lt;/b&gt;" in pages[2].content.decode()


def test_pages_survive_a_record_whose_details_were_corrupted(
    auditor_client: Client, frank: User, finance_collection: Collection
) -> None:
    document = Document.objects.create(collection=finance_collection, path="a.pdf", title="A")
    entry = _asked(frank, "to be corrupted", [document.pk], [document.pk])
    _asked(frank, "intact", [document.pk], [document.pk])
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        try:
            cursor.execute(
                "UPDATE audit_auditrecord SET details_json = %s WHERE seq = %s",
                ["{broken", entry.seq],
            )
        finally:
            cursor.execute("SET session_replication_role = origin")
    assert auditor_client.get(reverse("audit:records")).status_code == 200
    detail = auditor_client.get(reverse("audit:record", args=[entry.seq]))
    assert detail.status_code == 200 and "{broken" in detail.content.decode()
    page = auditor_client.get(reverse("audit:document", args=[document.pk]))
    assert page.status_code == 200
    assert [(p.actor, p.asked, p.cited) for p in page.context["people"]] == [("frank", 2, 1)]
    export = auditor_client.get(
        reverse("audit:export"), {"action": "question.asked", "format": "jsonl"}
    )
    parsed = [json.loads(line) for line in _lines(export)]
    assert parsed[0]["details"] == {"unparseable_details_json": "{broken"}
    assert parsed[1]["details"]["question"] == "intact"
