"""docs/security.md case 1: cross-department canaries on every surface, for every user.

Three departments hold near-identical documents (same policy, same wording), each with a
unique canary string in its text and in its title. Every user then goes through every
surface the portal has: the answer page, the streamed answer, the citations it links to,
passage search, document view and download by id (every department's ids), collections,
conversation history (everyone's ids), the audit pages and the admin site. No user may see
a foreign canary anywhere; each must still see their own department's, in full.

Answers here are extractive (no language model configured), which is the strictest case:
the retrieved passages themselves are the answer, so a passage that crossed a department
boundary would appear verbatim.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from ingest.index import AccessScope
from kb.accounts.access import readable_collection_ids
from kb.accounts.models import AUDITORS_GROUP, Department, Membership
from kb.answering.models import Conversation
from kb.api.models import ApiToken
from kb.audit.models import AuditRecord
from kb.library import components
from kb.library.models import Collection
from tests.api.conftest import api, service_account, token_for
from tests.ingesting import ingest_text

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "What is the approval code for travel expenses?"
POLICY = (
    "# Travel expenses\n\n"
    "Travel must be approved before booking. The approval code for travel expenses is {canary}."
    " Hotels are reimbursed up to the city limit. Keep every receipt for seven years.\n"
)
CANARY = re.compile(r"CANARY-[A-Z]+-[0-9a-f]{12}")


@dataclass
class Dept:
    department: Department
    canary: str
    member: User
    curator: User
    documents: list[int] = field(default_factory=list)
    collection: Collection | None = None


@pytest.fixture
def company(fresh_index: None) -> dict[str, Dept]:
    depts: dict[str, Dept] = {}
    for slug in ("finance", "legal", "plant"):
        department = Department.objects.create(name=slug.title(), slug=slug)
        canary = f"CANARY-{slug.upper()}-{secrets.token_hex(6)}"
        member = User.objects.create_user(f"{slug}-member", password="pw-123456789")
        curator = User.objects.create_user(f"{slug}-curator", password="pw-123456789")
        Membership.objects.create(user=member, department=department)
        Membership.objects.create(user=curator, department=department, role=Membership.Role.CURATOR)
        collection = Collection.objects.create(name=f"{slug} policies", department=department)
        dept = Dept(department, canary, member, curator, collection=collection)
        dept.documents.append(
            ingest_text(collection, f"travel-{canary}.md", POLICY.format(canary=canary))
        )
        depts[slug] = dept
    return depts


@pytest.fixture
def scopes_seen(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Every scope any index search was given, to prove no query went out unfiltered."""
    seen: list[object] = []
    index = components.get_index()
    original = index.search

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(args[2] if len(args) > 2 else kwargs.get("scope"))
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(index, "search", spy)
    yield seen


def canaries(body: bytes | str) -> set[str]:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return set(CANARY.findall(text))


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _body(response: object) -> bytes:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)  # type: ignore[attr-defined]
    return bytes(response.content)  # type: ignore[attr-defined]


def _surfaces(client: Client, company: dict[str, Dept]) -> Iterator[tuple[str, bytes]]:
    """(surface, body) for everything this client can reach, every department's ids tried."""
    page = client.post(reverse("portal:ask"), {"question": QUESTION})
    yield "ask", page.content
    stream = client.post(reverse("portal:ask_stream"), {"question": QUESTION})
    body = _body(stream)
    yield "ask_stream", body
    for url in set(re.findall(rb'"url": "([^"]+)"', body)):
        yield f"citation {url.decode()}", client.get(url.decode()).content
    yield "search", client.get(reverse("portal:search"), {"q": QUESTION}).content
    yield "collections", client.get(reverse("portal:collections")).content
    for dept in company.values():
        assert dept.collection is not None
        for name in ("portal:collection", "portal:status"):
            yield name, client.get(reverse(name, args=[dept.collection.pk])).content
        for document_id in dept.documents:
            yield "document", client.get(reverse("portal:document", args=[document_id])).content
            download = client.get(reverse("portal:download", args=[document_id]))
            yield "download", _body(download)
    yield "history", client.get(reverse("portal:conversations")).content
    for conversation in Conversation.objects.all():
        yield (
            "conversation",
            client.get(reverse("portal:conversation", args=[conversation.pk])).content,
        )
    yield "audit", client.get("/audit/").content
    yield "admin", client.get("/admin/library/document/", follow=True).content


def _api_surfaces(client: APIClient, company: dict[str, Dept]) -> Iterator[tuple[str, bytes]]:
    """The same, through the REST API (an integration acting on the user's behalf)."""
    yield "api ask", client.post("/api/v1/ask", {"question": QUESTION}, format="json").content
    streamed = client.post("/api/v1/ask", {"question": QUESTION, "stream": True}, format="json")
    yield "api ask_stream", _body(streamed)
    yield "api search", client.post("/api/v1/search", {"query": QUESTION}, format="json").content
    yield "api collections", client.get("/api/v1/collections").content
    for dept in company.values():
        assert dept.collection is not None
        yield "api collection", client.get(f"/api/v1/collections/{dept.collection.pk}").content
        documents = client.get(f"/api/v1/collections/{dept.collection.pk}/documents")
        yield "api collection documents", documents.content
        for document_id in dept.documents:
            yield "api document", client.get(f"/api/v1/documents/{document_id}").content
            download = client.get(f"/api/v1/documents/{document_id}/download")
            yield "api download", _body(download)
    yield "api history", client.get("/api/v1/conversations").content
    for conversation in Conversation.objects.all():
        yield "api conversation", client.get(f"/api/v1/conversations/{conversation.pk}").content
    yield "api audit", client.get("/api/v1/audit/records").content


def test_no_user_sees_a_foreign_canary_on_any_surface(
    company: dict[str, Dept], scopes_seen: list[object]
) -> None:
    auditor = User.objects.create_user("auditor", password="pw-123456789")
    auditor.groups.add(Group.objects.get_or_create(name=AUDITORS_GROUP)[0])
    superadmin = User.objects.create_superuser("root", password="pw-123456789")

    # One integration for the whole company that acts on each employee's behalf.
    integration = service_account("intranet-bridge", None)
    bridge_token = token_for(
        integration,
        ["search", "ask", "ingest", "admin", "on_behalf"],
        rate_limit_per_minute=100_000,  # one token for every user's calls in this test
    )

    for dept in company.values():
        for user in (dept.member, dept.curator):
            client = client_for(user)
            seen_here: dict[str, set[str]] = {}
            on_behalf = api(bridge_token, on_behalf=user.get_username())
            surfaces = [*_surfaces(client, company), *_api_surfaces(on_behalf, company)]
            for surface, body in surfaces:
                found = canaries(body)
                foreign = found - {dept.canary}
                assert not foreign, f"{user} saw {foreign} on {surface}"
                seen_here.setdefault(surface, set()).update(found)
            # Full results from their own department, on every content surface.
            for surface in (
                "ask",
                "ask_stream",
                "search",
                "document",
                "download",
                "conversation",
                "api ask",
                "api ask_stream",
                "api search",
                "api download",
                "api conversation",
            ):
                assert dept.canary in seen_here[surface], f"{user}: own canary missing on {surface}"
            assert any(s.startswith("citation") and dept.canary in f for s, f in seen_here.items())

    # Company-wide roles carry no content: the auditor and the superadmin see no canary on
    # any content surface. What they may do is review someone's conversation (and read the
    # audit pages), and every such review is itself on the trail.
    for user in (auditor, superadmin):
        on_behalf = api(bridge_token, on_behalf=user.get_username())
        for surface, body in [
            *_surfaces(client_for(user), company),
            *_api_surfaces(on_behalf, company),
        ]:
            if surface not in ("conversation", "audit", "api audit"):
                assert not canaries(body), f"{user} saw {canaries(body)} on {surface}"
        reviews = Conversation.objects.exclude(user=user).count()
        logged = AuditRecord.objects.filter(action="conversation.read_other", actor_id=user.pk)
        assert reviews and logged.count() == reviews

    # Every index query carried the asking user's scope, inside the query.
    assert scopes_seen and all(isinstance(scope, AccessScope) for scope in scopes_seen)
    all_scopes = {
        frozenset(readable_collection_ids(u))
        for d in company.values()
        for u in (d.member, d.curator, auditor, superadmin)
    }
    assert {scope.collection_ids for scope in scopes_seen if isinstance(scope, AccessScope)} <= (
        all_scopes
    )

    # Each probe of a foreign id was a 404 with an access.denied record naming the target.
    finance = company["finance"]
    denied_for_finance = AuditRecord.objects.filter(
        action="access.denied", actor_id=finance.member.pk
    )
    targets = {(r.target_type, r.target_id) for r in denied_for_finance}
    for other in ("legal", "plant"):
        for document_id in company[other].documents:
            assert ("document", str(document_id)) in targets
    assert ("audit", "trail") in targets


def test_a_narrowed_token_acting_for_employees_reads_only_inside_its_narrowing(
    company: dict[str, Dept], scopes_seen: list[object]
) -> None:
    # A Legal integration may act for any employee, but is narrowed to Legal's department
    # (and, on a second token, to Legal's collection): the intersection applies, so it
    # reads Legal's content for Legal's people and nothing at all for anyone else's.
    legal = company["legal"]
    assert legal.collection is not None
    integration = service_account("legal-bridge", None)
    narrowed_tokens = [
        ApiToken.issue(
            account=integration, name=name, actions=["search", "ask", "on_behalf"],
            rate_limit_per_minute=100_000,
        )
        for name in ("by department", "by collection")
    ]  # fmt: skip
    narrowed_tokens[0][0].departments.add(legal.department)
    narrowed_tokens[1][0].collections.add(legal.collection)
    for _, token in narrowed_tokens:
        for dept in company.values():
            for user in (dept.member, dept.curator):
                client = api(token, on_behalf=user.get_username())
                seen = set()
                for surface, body in _api_surfaces(client, company):
                    found = canaries(body)
                    assert found <= {legal.canary}, f"{user} via narrowed token: {surface}"
                    seen |= found
                    if surface in ("api ask", "api search") and dept is not legal:
                        # Outside the narrowing: an honest "nothing here", not an error.
                        assert not found
                if dept is legal:
                    assert legal.canary in seen
                else:
                    assert not seen
                    for document_id in dept.documents:  # their own documents: 404
                        response = client.get(f"/api/v1/documents/{document_id}")
                        assert response.status_code == 404


def test_the_on_behalf_name_must_match_exactly(company: dict[str, Dept]) -> None:
    integration = service_account("bridge", None)
    token = token_for(integration, ["search", "on_behalf"])
    member = company["finance"].member.get_username()
    for spoofed in (f"{member}\t", f" {member}", f"{member} ", member.upper()):
        response = api(token, on_behalf=spoofed).post(
            "/api/v1/search", {"query": QUESTION}, format="json"
        )
        assert response.status_code in (401, 403), spoofed
        assert company["finance"].canary not in response.content.decode()
    exact = api(token, on_behalf=member).post("/api/v1/search", {"query": QUESTION}, format="json")
    assert exact.status_code == 200
