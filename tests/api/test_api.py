"""REST API v1 against the real database, index and embedding model: every endpoint, the
department boundary, acting on behalf of an employee, and the integration comforts."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from kb.accounts.models import AUDITORS_GROUP, Clearance, Department, Membership
from kb.api.models import ApiToken, TokenUsage
from kb.audit.models import AuditRecord
from kb.library.models import Collection
from tests.api.conftest import api, service_account, token_for
from tests.ingesting import ingest_text

pytestmark = pytest.mark.django_db(transaction=True)

FINANCE_TEXT = "Invoices above 50,000 EUR are approved by the CFO, Dana Whitfield."
ENGINEERING_TEXT = "Production deploys are approved by the on-call lead, Ravi Menon."


@pytest.fixture
def corpus(
    fresh_index: None, finance_collection: Collection, engineering_collection: Collection
) -> dict[str, int]:
    return {
        "finance": ingest_text(finance_collection, "invoices.txt", FINANCE_TEXT),
        "engineering": ingest_text(engineering_collection, "deploys.txt", ENGINEERING_TEXT),
    }


def problem(response: object) -> dict[str, object]:
    assert response["Content-Type"] == "application/problem+json"  # type: ignore[index]
    body = json.loads(response.content)  # type: ignore[attr-defined]
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == response.status_code  # type: ignore[attr-defined]
    return body  # type: ignore[no-any-return]


def test_a_token_of_one_department_sees_nothing_of_another(
    corpus: dict[str, int],
    finance_erp: str,
    finance_collection: Collection,
    engineering_collection: Collection,
) -> None:
    client = api(finance_erp)
    found = client.post(
        "/api/v1/search", {"query": "who approves deploys and invoices"}, format="json"
    )
    assert found.status_code == 200
    texts = " ".join(p["text"] for p in found.json()["passages"])
    assert "Dana Whitfield" in texts and "Ravi Menon" not in texts
    answer = client.post(
        "/api/v1/ask", {"question": "Who approves production deploys?"}, format="json"
    )
    assert answer.status_code == 200 and "Ravi Menon" not in json.dumps(answer.json())
    own = client.post(
        "/api/v1/ask", {"question": "Who approves invoices above 50,000 EUR?"}, format="json"
    )
    assert "Dana Whitfield" in json.dumps(own.json())
    foreign = corpus["engineering"]
    for url in (
        f"/api/v1/documents/{foreign}",
        f"/api/v1/documents/{foreign}/download",
        f"/api/v1/collections/{engineering_collection.pk}",
        f"/api/v1/collections/{engineering_collection.pk}/documents",
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        problem(response)
    upload = client.post(
        f"/api/v1/collections/{engineering_collection.pk}/documents",
        {"file": SimpleUploadedFile("x.txt", b"planted")},
        format="multipart",
    )
    assert upload.status_code == 404
    listed = client.get("/api/v1/collections").json()["results"]
    assert [c["id"] for c in listed] == [finance_collection.pk]
    download = client.get(f"/api/v1/documents/{corpus['finance']}/download")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == FINANCE_TEXT.encode()  # type: ignore[attr-defined]
    denials = AuditRecord.objects.filter(action="access.denied", actor="finance-erp")
    assert denials.count() == 5


def test_on_behalf_of_gets_exactly_that_employees_view(
    corpus: dict[str, int], engineering_crm: str, alice: User, erin: User
) -> None:
    # The token's account is in Engineering; on behalf of alice (Finance) it sees Finance only.
    as_alice = api(engineering_crm, on_behalf="alice")
    found = as_alice.post(
        "/api/v1/search", {"query": "who approves invoices and deploys"}, format="json"
    )
    texts = " ".join(p["text"] for p in found.json()["passages"])
    assert "Dana Whitfield" in texts and "Ravi Menon" not in texts
    answer = as_alice.post(
        "/api/v1/ask", {"question": "Who approves invoices?"}, format="json"
    ).json()
    # The conversation is alice's, in her history and not the service account's.
    history = as_alice.get("/api/v1/conversations").json()["results"]
    assert [c["id"] for c in history] == [answer["conversation"]]
    assert api(engineering_crm).get("/api/v1/conversations").json()["results"] == []
    assert (
        api(engineering_crm, on_behalf="erin")
        .get(f"/api/v1/conversations/{answer['conversation']}")
        .status_code
        == 404
    )
    used = AuditRecord.objects.filter(action="token.used", actor="alice").first()
    assert used is not None and used.details["on_behalf"] is True
    asked = AuditRecord.objects.get(action="question.asked", actor="alice")
    assert asked.details["question"] == "Who approves invoices?"
    # An unknown or deactivated employee, or a token without the right, is refused.
    assert api(engineering_crm, on_behalf="nobody").get("/api/v1/collections").status_code == 403
    erin.is_active = False
    erin.save()
    assert api(engineering_crm, on_behalf="erin").get("/api/v1/collections").status_code == 403


def test_on_behalf_needs_the_right(corpus: dict[str, int], finance_erp: str, alice: User) -> None:
    response = api(finance_erp, on_behalf="alice").get("/api/v1/collections")
    assert response.status_code == 403
    assert "on behalf" in str(problem(response)["detail"])


def test_tokens_narrowed_to_a_collection_and_to_actions(
    corpus: dict[str, int], departments: dict[str, Department], finance_collection: Collection
) -> None:
    other = Collection.objects.create(name="Finance archive", department=departments["finance"])
    ingest_text(other, "old.txt", "Invoices in 2019 were approved by Tom Archer.")
    account = service_account("reader", departments["finance"])
    narrow = token_for(account, ["search"])
    ApiToken.objects.get(account=account).collections.set([other])
    texts = " ".join(
        p["text"]
        for p in api(narrow)
        .post("/api/v1/search", {"query": "who approved invoices"}, format="json")
        .json()["passages"]
    )
    assert "Tom Archer" in texts and "Dana Whitfield" not in texts
    # Search only: asking and uploading are refused with a clear problem.
    refused = api(narrow).post("/api/v1/ask", {"question": "who?"}, format="json")
    assert refused.status_code == 403 and "ask" in str(problem(refused)["detail"])
    upload = api(narrow).post(
        f"/api/v1/collections/{other.pk}/documents",
        {"file": SimpleUploadedFile("x.txt", b"hello")},
        format="multipart",
    )
    assert upload.status_code == 403


def test_upload_status_versions_and_delete(
    fresh_index: None, finance_erp: str, finance_collection: Collection
) -> None:
    client = api(finance_erp)
    url = f"/api/v1/collections/{finance_collection.pk}/documents"
    first = client.post(
        url, {"file": SimpleUploadedFile("policy.txt", b"Version one text.")}, format="multipart"
    )
    assert first.status_code == 201
    result = first.json()["results"][0]
    assert result["outcome"] == "created" and result["status"] == "queued"
    again = client.post(
        url, {"file": SimpleUploadedFile("policy.txt", b"Version one text.")}, format="multipart"
    )
    assert again.status_code == 200 and again.json()["results"][0]["outcome"] == "duplicate"
    second = client.post(
        url, {"file": SimpleUploadedFile("policy.txt", b"Version two text.")}, format="multipart"
    )
    assert second.json()["results"][0]["outcome"] == "new_version"
    document = client.get(f"/api/v1/documents/{result['document']}").json()
    assert [v["number"] for v in document["versions"]] == [2, 1]
    listing = client.get(url).json()
    assert [d["id"] for d in listing["results"]] == [result["document"]]
    assert client.delete(f"/api/v1/documents/{result['document']}").status_code == 204
    assert client.get(f"/api/v1/documents/{result['document']}").status_code == 404
    actions = set(AuditRecord.objects.filter(actor="finance-erp").values_list("action", flat=True))
    assert {
        "document.uploaded",
        "document.new_version",
        "document.deleted",
        "token.used",
    } <= actions


def test_oversize_and_unsupported_uploads(
    fresh_index: None, finance_erp: str, finance_collection: Collection, settings: object
) -> None:
    settings.KB_MAX_UPLOAD_BYTES = 1000  # type: ignore[attr-defined]
    url = f"/api/v1/collections/{finance_collection.pk}/documents"
    big = api(finance_erp).post(
        url, {"file": SimpleUploadedFile("big.txt", b"x" * 2000)}, format="multipart"
    )
    assert big.status_code == 413 and "large" in str(problem(big)["detail"]).lower()
    exe = api(finance_erp).post(
        url, {"file": SimpleUploadedFile("tool.exe", b"MZ\x90\x00")}, format="multipart"
    )
    assert exe.status_code == 415
    problem(exe)


def test_idempotency_key_makes_retries_harmless(
    fresh_index: None, finance_erp: str, finance_collection: Collection
) -> None:
    client = api(finance_erp)
    url = f"/api/v1/collections/{finance_collection.pk}/documents"
    headers: dict[str, Any] = {"HTTP_IDEMPOTENCY_KEY": "upload-42"}
    first = client.post(
        url, {"file": SimpleUploadedFile("a.txt", b"Alpha text.")}, format="multipart", **headers
    )
    retry = client.post(
        url, {"file": SimpleUploadedFile("a.txt", b"Alpha text.")}, format="multipart", **headers
    )
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json() and retry["Idempotent-Replayed"] == "true"
    assert AuditRecord.objects.filter(action="document.uploaded").count() == 1
    reused = client.post(
        url, {"file": SimpleUploadedFile("b.txt", b"Other.")}, format="multipart", **headers
    )
    assert reused.status_code == 422
    problem(reused)
    ask = {"question": "Who approves invoices?"}
    one = client.post("/api/v1/ask", ask, format="json", HTTP_IDEMPOTENCY_KEY="ask-1")
    two = client.post("/api/v1/ask", ask, format="json", HTTP_IDEMPOTENCY_KEY="ask-1")
    assert one.json() == two.json()
    assert AuditRecord.objects.filter(action="question.asked").count() == 1


def test_rate_limit_answers_429_with_retry_after(
    departments: dict[str, Department],
) -> None:
    account = service_account("chatty", departments["finance"])
    token = token_for(account, ["search"], rate_limit_per_minute=3)
    client = api(token)
    statuses = [client.get("/api/v1/usage").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = client.get("/api/v1/usage")
    assert int(limited["Retry-After"]) > 0
    assert problem(limited)["title"] == "Too many requests"


def test_streamed_answer_over_server_sent_events(corpus: dict[str, int], finance_erp: str) -> None:
    response = api(finance_erp).post(
        "/api/v1/ask",
        {"question": "Who approves invoices above 50,000 EUR?", "stream": True},
        format="json",
    )
    assert response["Content-Type"].startswith("text/event-stream")
    body = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    events = [
        line.removeprefix("event: ") for line in body.splitlines() if line.startswith("event: ")
    ]
    assert events[0] == "sources" and events[-1] == "done"
    done = json.loads(body.rsplit("data: ", 1)[1])
    assert "Dana Whitfield" in done["answer"] and done["conversation"]
    usage = TokenUsage.objects.get(action="ask")
    assert usage.requests == 1


def test_problem_details_for_bad_requests_and_missing_tokens(finance_erp: str) -> None:
    missing = api("").get("/api/v1/collections")
    assert missing.status_code == 401 and missing["WWW-Authenticate"].startswith("Bearer")
    problem(missing)
    wrong = api("kbt_00000000.not-the-secret").get("/api/v1/collections")
    assert wrong.status_code == 401
    invalid = api(finance_erp).post("/api/v1/search", {"query": ""}, format="json")
    assert invalid.status_code == 400 and "query" in problem(invalid)["errors"]  # type: ignore[operator]
    unknown = api(finance_erp).get("/api/v1/nothing-here")
    assert unknown.status_code == 404
    problem(unknown)


def test_revoked_expired_and_deactivated_tokens_stop_working(
    departments: dict[str, Department],
) -> None:
    account = service_account("temp", departments["finance"])
    token = token_for(account, ["search"])
    client = api(token)
    assert client.get("/api/v1/usage").status_code == 200
    assert client.post("/api/v1/token/revoke").status_code == 204
    assert client.get("/api/v1/usage").status_code == 401
    expired = token_for(account, ["search"], expires_at=timezone.now() - timedelta(seconds=1))
    assert "expired" in str(problem(api(expired).get("/api/v1/usage"))["detail"])
    live = token_for(account, ["search"])
    account.user.is_active = False
    account.user.save()
    assert api(live).get("/api/v1/usage").status_code == 401
    assert AuditRecord.objects.filter(action="token.revoked").count() == 1


def test_rotation_gives_a_new_token_and_a_grace_period(departments: dict[str, Department]) -> None:
    account = service_account("rotating", departments["finance"])
    old = token_for(account, ["search", "ask"])
    rotated = api(old).post("/api/v1/token/rotate", {"grace_hours": 0}, format="json")
    assert rotated.status_code == 201
    new = rotated.json()["token"]
    assert api(new).get("/api/v1/usage").status_code == 200
    assert api(old).get("/api/v1/usage").status_code == 401  # no grace asked for
    stored = ApiToken.objects.get(prefix=new.split(".")[0])
    assert stored.actions == ["ask", "search"] and new.split(".")[1] not in stored.secret_sha256


def test_collections_create_update_delete(
    fresh_index: None, finance_erp: str, departments: dict[str, Department]
) -> None:
    client = api(finance_erp)
    created = client.post(
        "/api/v1/collections",
        {
            "name": "Contracts",
            "department": departments["finance"].pk,
            "classification": Clearance.INTERNAL,
        },
        format="json",
    )
    assert created.status_code == 201
    collection_id = created.json()["id"]
    changed = client.patch(
        f"/api/v1/collections/{collection_id}", {"allow_download": False}, format="json"
    )
    assert changed.status_code == 200 and changed.json()["allow_download"] is False
    elsewhere = client.post(
        "/api/v1/collections",
        {"name": "Planted", "department": departments["engineering"].pk},
        format="json",
    )
    assert elsewhere.status_code == 403
    assert client.delete(f"/api/v1/collections/{collection_id}").status_code == 204
    actions = list(
        AuditRecord.objects.filter(target_type="collection").values_list("action", flat=True)
    )
    assert {"collection.created", "collection.changed", "collection.deleted"} <= set(actions)


def test_usage_and_audit_export_for_auditors(
    corpus: dict[str, int], departments: dict[str, Department]
) -> None:
    auditor_account = service_account("siem-bridge", None)
    auditor_account.user.groups.add(Group.objects.get_or_create(name=AUDITORS_GROUP)[0])
    token = token_for(auditor_account, ["admin"])
    records = api(token).get("/api/v1/audit/records", {"action": "document.uploaded"})
    assert records.status_code == 200
    assert {r["action"] for r in records.json()["results"]} == {"document.uploaded"}
    assert AuditRecord.objects.filter(action="audit.exported", actor="siem-bridge").exists()
    # The admin action alone is not enough: the account must be an auditor.
    plain = service_account("not-auditor", departments["finance"])
    refused = api(token_for(plain, ["admin"])).get("/api/v1/audit/records")
    assert refused.status_code == 403
    usage = api(token).get("/api/v1/usage").json()
    assert usage["token"].startswith("kbt_")


def test_schema_and_docs_are_served(finance_erp: str) -> None:
    from rest_framework.test import APIClient

    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    spec = json.loads(schema.content)
    assert spec["openapi"].startswith("3.") and "/api/v1/ask" in spec["paths"]
    assert "intersection" in spec["info"]["description"]  # the on-behalf-of rule, stated
    docs = APIClient().get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()
    assert b"cdn" not in docs.content.lower()  # served from this server, offline


def test_documents_without_download_permission(
    corpus: dict[str, int], finance_collection: Collection, departments: dict[str, Department]
) -> None:
    finance_collection.allow_download = False
    finance_collection.save()
    reader = service_account("reader2", departments["finance"])
    Membership.objects.filter(user=reader.user).update(clearance=Clearance.INTERNAL)
    response = api(token_for(reader, ["search"])).get(
        f"/api/v1/documents/{corpus['finance']}/download"
    )
    assert response.status_code == 403
    problem(response)


def test_a_retried_streamed_ask_replays_the_first_answer(
    corpus: dict[str, int], finance_erp: str
) -> None:
    client = api(finance_erp)
    ask = {"question": "Who approves invoices above 50,000 EUR?", "stream": True}

    def done_event(response: Any) -> dict[str, Any]:
        body = b"".join(response.streaming_content).decode()
        assert body.splitlines()[0] == "event: sources"
        return json.loads(body.rsplit("data: ", 1)[1])  # type: ignore[no-any-return]

    first = done_event(client.post("/api/v1/ask", ask, format="json", HTTP_IDEMPOTENCY_KEY="s-1"))
    retry = client.post("/api/v1/ask", ask, format="json", HTTP_IDEMPOTENCY_KEY="s-1")
    assert retry["Idempotent-Replayed"] == "true"
    assert done_event(retry) == first
    assert AuditRecord.objects.filter(action="question.asked").count() == 1


def test_superadmins_create_and_revoke_tokens_in_the_portal(
    departments: dict[str, Department], alice: User
) -> None:
    from django.test import Client

    assert Client().get("/integrations/").status_code == 302  # sign in first
    member = Client()
    member.force_login(alice)
    assert member.get("/integrations/").status_code == 404
    root = User.objects.create_superuser("root", password="root-password-1")
    admin = Client()
    admin.force_login(root)
    page = admin.post(
        "/integrations/",
        {
            "account": "sap-erp",
            "name": "SAP",
            "actions": ["search", "ask"],
            "departments": [departments["finance"].pk],
            "expires_days": 30,
            "rate": 60,
        },
    )
    assert page.status_code == 200
    secret = page.context["new_secret"]
    assert secret.startswith("kbt_") and api(secret).get("/api/v1/usage").status_code == 200
    token = ApiToken.objects.get(prefix=secret.split(".")[0])
    assert token.created_by == root and list(token.departments.all()) == [departments["finance"]]
    assert secret not in admin.get("/integrations/").content.decode()  # shown once
    admin.post(f"/integrations/{token.pk}/revoke/")
    assert api(secret).get("/api/v1/usage").status_code == 401
    assert {"token.created", "token.revoked"} <= set(
        AuditRecord.objects.filter(actor="root").values_list("action", flat=True)
    )
    # An employee's account cannot be turned into a service account.
    refused = admin.post(
        "/integrations/",
        {"account": "alice", "name": "x", "actions": ["search"], "expires_days": 1, "rate": 1},
    )
    assert "employee" in refused.content.decode()


def test_a_stream_cut_short_releases_its_idempotency_key(
    corpus: dict[str, int], finance_erp: str
) -> None:
    client = api(finance_erp)
    ask = {"question": "Who approves invoices above 50,000 EUR?", "stream": True}
    first = client.post("/api/v1/ask", ask, format="json", HTTP_IDEMPOTENCY_KEY="cut-1")
    next(iter(first.streaming_content))  # type: ignore[attr-defined]  # the client goes away
    first.close()
    retry = client.post("/api/v1/ask", ask, format="json", HTTP_IDEMPOTENCY_KEY="cut-1")
    assert retry.status_code == 200 and not retry.has_header("Idempotent-Replayed")
    body = b"".join(retry.streaming_content).decode()  # type: ignore[attr-defined]
    assert "event: done" in body


def test_an_unprintable_on_behalf_name_is_nobody(engineering_crm: str, alice: User) -> None:
    response = api(engineering_crm).get("/api/v1/collections", HTTP_X_ON_BEHALF_OF="al\x00ice")
    assert response.status_code == 403
    assert "no active employee" in str(problem(response)["detail"])


def test_the_token_command_creates_lists_and_revokes(
    departments: dict[str, Department], alice: User
) -> None:
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError

    out = StringIO()
    call_command(
        "api_token", "create", "crm", "--actions", "search,ask", "--department", "finance",
        stdout=out,
    )  # fmt: skip
    secret = out.getvalue().strip().splitlines()[-1]
    assert api(secret).get("/api/v1/usage").status_code == 200
    listing = StringIO()
    call_command("api_token", "list", stdout=listing)
    assert secret.split(".")[0] in listing.getvalue() and secret not in listing.getvalue()
    with pytest.raises(CommandError, match="employee"):
        call_command("api_token", "create", "alice", "--actions", "search")
    call_command("api_token", "revoke", secret.split(".")[0], stdout=StringIO())
    assert api(secret).get("/api/v1/usage").status_code == 401
    assert User.objects.get(username="crm").has_usable_password() is False
