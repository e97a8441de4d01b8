"""Classification, sharing, download control, spoofed scope, guessed ids and revocation
(docs/security.md cases 3, 4 and 5), through the portal against the real database and index."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from kb.accounts.access import readable_collection_ids
from kb.accounts.models import Clearance, Department, Membership
from kb.accounts.sessions import SIGNED_IN_AT
from kb.answering.models import Conversation
from kb.audit.models import AuditRecord
from kb.library.models import Collection
from tests.ingesting import ingest_text

pytestmark = pytest.mark.django_db(transaction=True)

SECRET_TEXT = "The merger codename is BLUEHERON and the signing date is the ninth of March."


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def search(client: Client, query: str = "merger codename signing date", **extra: str) -> str:
    response = client.get(reverse("portal:search"), {"q": query, **extra})
    assert response.status_code == 200
    return response.content.decode()


def denials(user: User) -> list[AuditRecord]:
    return list(
        AuditRecord.objects.filter(action="access.denied", actor_id=user.pk).order_by("seq")
    )


@pytest.fixture
def merger(fresh_index: None, departments: dict[str, Department]) -> Collection:
    collection = Collection.objects.create(
        name="Deals", department=departments["finance"], classification=Clearance.CONFIDENTIAL
    )
    ingest_text(collection, "merger.txt", SECRET_TEXT)
    return collection


def test_clearance_below_the_classification_reads_nothing(merger: Collection, frank: User) -> None:
    client = client_for(frank)  # a Finance member, cleared to "internal" by default
    assert "BLUEHERON" not in search(client)
    assert merger.pk not in readable_collection_ids(frank)
    Membership.objects.filter(user=frank).update(clearance=Clearance.CONFIDENTIAL)
    assert "BLUEHERON" in search(client)  # the very next request
    Membership.objects.filter(user=frank).update(clearance=Clearance.INTERNAL)
    assert "BLUEHERON" not in search(client)


def test_sharing_with_named_departments(
    merger: Collection, departments: dict[str, Department], erin: User
) -> None:
    hr = Department.objects.create(name="HR", slug="hr")
    harry = User.objects.create_user("harry", password="pw-123456789")
    Membership.objects.create(user=harry, department=hr, clearance=Clearance.SECRET)
    Membership.objects.filter(user=erin).update(clearance=Clearance.CONFIDENTIAL)
    merger.visibility = Collection.Visibility.SHARED
    merger.save()
    merger.shared_with.add(departments["engineering"])
    assert "BLUEHERON" in search(client_for(erin))
    assert "BLUEHERON" not in search(client_for(harry))  # not shared with HR
    merger.shared_with.remove(departments["engineering"])
    assert "BLUEHERON" not in search(client_for(erin))
    changes = AuditRecord.objects.filter(action="collection.changed", target_id=str(merger.pk))
    assert {r.details.get("shared_with", {}).get("event") for r in changes} >= {"add", "remove"}


def test_company_wide_collections_respect_the_highest_clearance(merger: Collection) -> None:
    nobody = User.objects.create_user("visitor", password="pw-123456789")  # no membership
    merger.visibility = Collection.Visibility.COMPANY
    merger.save()
    assert merger.pk not in readable_collection_ids(nobody)  # confidential > public
    merger.classification = Clearance.PUBLIC
    merger.save()
    assert "BLUEHERON" in search(client_for(nobody))


def test_answers_without_downloads(merger: Collection, alice: User, frank: User) -> None:
    Membership.objects.filter(user=frank).update(clearance=Clearance.SECRET)
    Membership.objects.filter(user=alice).update(clearance=Clearance.SECRET)
    merger.allow_download = False
    merger.save()
    document = merger.documents.get()
    reader = client_for(frank)
    page = reader.get(reverse("portal:document", args=[document.pk]))
    assert page.status_code == 200 and b"BLUEHERON" in page.content
    assert b"/download/" not in page.content
    refused = reader.get(reverse("portal:download", args=[document.pk]))
    assert refused.status_code == 403
    assert [r.details["reason"] for r in denials(frank)] == [
        "downloads are off for this collection"
    ]
    # The curator who manages the collection still gets the original.
    assert client_for(alice).get(reverse("portal:download", args=[document.pk])).status_code == 200
    actions = set(AuditRecord.objects.values_list("action", flat=True))
    assert {"document.viewed", "document.downloaded"} <= actions


def test_a_client_supplied_scope_is_ignored(
    merger: Collection, engineering_collection: Collection, erin: User
) -> None:
    client = client_for(erin)
    for spoof in (
        {"collection": str(merger.pk)},
        {"collection_id": str(merger.pk)},
        {"department": str(merger.department_id)},
        {"filter": '{"must": []}'},
        {"scope": f"[{merger.pk}]"},
    ):
        assert "BLUEHERON" not in search(client, **spoof)
        response = client.post(
            reverse("portal:ask_stream"),
            {"question": "What is the merger codename?", **spoof},
        )
        body = b"".join(response.streaming_content)  # type: ignore[attr-defined]
        assert b"BLUEHERON" not in body


def test_guessed_ids_are_404_and_audited(merger: Collection, erin: User, frank: User) -> None:
    document = merger.documents.get()
    conversation = Conversation.objects.create(user=frank, title="mine")
    client = client_for(erin)
    for url in (
        reverse("portal:document", args=[document.pk]),
        reverse("portal:download", args=[document.pk]),
        reverse("portal:collection", args=[merger.pk]),
        reverse("portal:conversation", args=[conversation.pk]),
        reverse("portal:document", args=[987654]),  # does not exist at all: same answer
    ):
        assert client.get(url).status_code == 404, url
    stream = client.post(
        reverse("portal:ask_stream"), {"question": "hi", "conversation": conversation.pk}
    )
    assert stream.status_code == 404
    targets = [(r.target_type, r.target_id) for r in denials(erin)]
    assert targets == [
        ("document", str(document.pk)),
        ("document", str(document.pk)),
        ("collection", str(merger.pk)),
        ("conversation", str(conversation.pk)),
        ("document", "987654"),
        ("conversation", str(conversation.pk)),
    ]
    # Denials carry who, where and which request.
    for record in denials(erin):
        assert record.actor == "erin" and record.request_id and record.ip == "127.0.0.1"


def test_removing_a_membership_takes_effect_on_the_next_request(
    merger: Collection, frank: User, alice: User
) -> None:
    Membership.objects.filter(user=frank).update(clearance=Clearance.CONFIDENTIAL)
    client = client_for(frank)
    document = merger.documents.get()
    assert "BLUEHERON" in search(client)
    membership = Membership.objects.get(user=frank)
    membership.delete()
    assert "BLUEHERON" not in search(client)
    assert client.get(reverse("portal:document", args=[document.pk])).status_code == 404
    removed = AuditRecord.objects.get(action="membership.removed")
    assert removed.department_id == merger.department_id


def test_moving_a_collection_takes_effect_on_the_next_request(
    merger: Collection, frank: User, erin: User, departments: dict[str, Department]
) -> None:
    for user in (frank, erin):
        Membership.objects.filter(user=user).update(clearance=Clearance.CONFIDENTIAL)
    finance_reader, engineering_reader = client_for(frank), client_for(erin)
    assert "BLUEHERON" in search(finance_reader)
    assert "BLUEHERON" not in search(engineering_reader)
    merger.department = departments["engineering"]
    merger.save()  # nothing re-embedded: the filter is computed per request
    assert "BLUEHERON" not in search(finance_reader)
    assert "BLUEHERON" in search(engineering_reader)
    moved = AuditRecord.objects.get(action="collection.changed", target_id=str(merger.pk))
    assert moved.details["changes"]["department_id"] == [
        departments["finance"].pk,
        departments["engineering"].pk,
    ]


def test_history_hides_answers_from_documents_no_longer_readable(
    merger: Collection, frank: User
) -> None:
    Membership.objects.filter(user=frank).update(clearance=Clearance.CONFIDENTIAL)
    client = client_for(frank)
    client.post(reverse("portal:ask"), {"question": "What is the merger codename?"})
    conversation = Conversation.objects.get(user=frank)
    url = reverse("portal:conversation", args=[conversation.pk])
    assert b"BLUEHERON" in client.get(url).content
    Membership.objects.filter(user=frank).update(clearance=Clearance.INTERNAL)
    page = client.get(url).content
    assert b"BLUEHERON" not in page and b"no longer access" in page


def test_a_deactivated_users_session_stops_working(alice: User) -> None:
    client = client_for(alice)
    assert client.get(reverse("portal:collections")).status_code == 200
    alice.is_active = False
    alice.save()
    response = client.get(reverse("portal:collections"))
    assert response.status_code == 302 and "/login/" in response["Location"]
    ended = AuditRecord.objects.get(action="auth.session_ended")
    assert ended.actor == "alice" and ended.details["reason"] == "account deactivated"
    change = AuditRecord.objects.filter(action="user.changed", target_id=str(alice.pk)).first()
    assert change is not None and change.details["changes"] == {"is_active": [True, False]}


def test_sessions_end_after_their_absolute_lifetime(alice: User, settings: object) -> None:
    client = client_for(alice)
    session = client.session
    session[SIGNED_IN_AT] = time.time() - 13 * 3600  # signed in 13 hours ago (limit 12)
    session.save()
    response = client.get(reverse("portal:collections"))
    assert response.status_code == 302
    ended = AuditRecord.objects.get(action="auth.session_ended")
    assert ended.actor == "alice" and "absolute" in ended.details["reason"]


def test_sign_ins_are_audited_and_throttled(alice: User) -> None:
    client = Client()
    login = reverse("login")
    assert client.post(login, {"username": "alice", "password": "wrong"}).status_code == 200
    assert (
        client.post(login, {"username": "alice", "password": "alice-password-1"}).status_code == 302
    )
    assert AuditRecord.objects.filter(action="auth.login", actor="alice").count() == 1
    fresh = Client()
    for _ in range(5):
        fresh.post(login, {"username": "alice", "password": "wrong"})
    refused = fresh.post(login, {"username": "alice", "password": "alice-password-1"})
    assert refused.status_code == 429
    assert b"Too many failed sign-ins" in refused.content
    assert "_auth_user_id" not in fresh.session  # the right password did not get in
    failures = AuditRecord.objects.filter(action="auth.login_failed", actor="alice")
    assert failures.count() == 6 and {r.ip for r in failures} == {"127.0.0.1"}
    assert AuditRecord.objects.filter(action="auth.login_throttled", actor="alice").exists()
    # Someone guessing at another name is counted per name, so alice's lockout is alice's.
    other = User.objects.create_user("bob", password="bob-password-1")
    assert other.pk
    assert (
        Client().post(login, {"username": "bob", "password": "bob-password-1"}).status_code == 302
    )
