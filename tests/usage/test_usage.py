"""Usage metering, quotas, the monthly report and the cost comparison (kb/usage/).

Answers go through llama.cpp's real OpenAI-compatible server; the meter's rows are what the
report, the CSV, the command, the API's usage endpoint and the cost page are checked against.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from inference.llm import Completion, Delta, OpenAICompatibleLLM
from kb.accounts.models import AUDITORS_GROUP, Department, Membership
from kb.answering import answers as services
from kb.api.models import ApiToken, TokenUsage
from kb.audit.models import AuditRecord
from kb.routing import clients
from kb.usage.cost import CostInputs, compare
from kb.usage.models import DepartmentQuota, UsageRecord
from kb.usage.months import current_month, parse_month
from kb.usage.quota import NOTICE_HARD, NOTICE_SOFT, localized_notice
from tests.api.conftest import api, service_account, token_for
from tests.asking import answer_question

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "What is the hotel limit in Munich?"


@pytest.fixture
def llm(settings: Any, llm_server_url: str) -> Iterator[Any]:
    """The configured model is llama.cpp's server (gemma), with short answers."""
    clients.get_chat_model.cache_clear()
    clients.chat_model_version.cache_clear()
    settings.LLM_BASE_URL = llm_server_url
    settings.LLM_MODEL = "gemma-3-270m"
    settings.LLM_MAX_TOKENS = 32
    yield settings
    clients.get_chat_model.cache_clear()
    clients.chat_model_version.cache_clear()


@pytest.fixture
def model_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every request sent to an OpenAI-compatible server (it still goes through)."""
    calls: list[str] = []
    stream, complete = OpenAICompatibleLLM.stream, OpenAICompatibleLLM.complete

    def counting_stream(
        self: OpenAICompatibleLLM, messages: list[dict[str, str]]
    ) -> Iterator[Delta | Completion]:
        calls.append("stream")
        return stream(self, messages)

    def counting_complete(self: OpenAICompatibleLLM, messages: list[dict[str, str]]) -> Completion:
        calls.append("complete")
        return complete(self, messages)

    monkeypatch.setattr(OpenAICompatibleLLM, "stream", counting_stream)
    monkeypatch.setattr(OpenAICompatibleLLM, "complete", counting_complete)
    return calls


def _admin_of(name: str, department: Department) -> User:
    user = User.objects.create_user(name, password=f"{name}-password-1")
    Membership.objects.create(
        user=user, department=department, role=Membership.Role.DEPARTMENT_ADMIN
    )
    return user


def _auditor(name: str = "audrey") -> User:
    user = User.objects.create_user(name, password=f"{name}-password-1")
    user.groups.add(Group.objects.get_or_create(name=AUDITORS_GROUP)[0])
    return user


def _meter_row(department: Department, user: User | None = None, **fields: Any) -> UsageRecord:
    """A row as the meter writes it, for report and cost tests that need known volumes."""
    values: dict[str, Any] = {
        "user": user,
        "user_name": user.get_username() if user else "",
        "department": department,
        "department_name": department.name,
        "kind": UsageRecord.Kind.ANSWER,
        "mode": "generated",
        "endpoint": "configured",
        "model": "m",
    }
    values.update(fields)
    return UsageRecord.objects.create(**values)


def test_answers_are_metered_per_user_department_and_api_token(
    indexed_policy: None, alice: User, departments: dict[str, Department], llm: Any
) -> None:
    answer = answer_question(alice, QUESTION)
    assert answer.mode == "generated", answer.notice
    row = UsageRecord.objects.get(turn_id=answer.turn_id or 0)
    assert (row.user, row.department, row.api_token) == (alice, departments["finance"], None)
    assert row.kind == "answer" and row.mode == "generated" and row.on_premises
    assert row.endpoint == "configured" and "gemma" in row.model
    assert (row.prompt_tokens, row.completion_tokens) == (
        answer.prompt_tokens,
        answer.completion_tokens,
    )
    # llama.cpp's server reports no prompt tokens in a stream (vLLM does): completion only.
    assert 0 < row.completion_tokens <= 32
    # The model's time: more than nothing, and part of the answer's total time.
    assert 0 < row.gpu_seconds <= answer.seconds
    # Charged to the department the audit record names.
    asked = AuditRecord.objects.get(action="question.asked", target_id=str(answer.turn_id))
    assert asked.department_id == row.department_id

    # A follow-up is rewritten by the model first: a second, separate row.
    follow_up = answer_question(alice, "And per night?", answer.conversation_id)
    rows = UsageRecord.objects.filter(turn_id=follow_up.turn_id or 0)
    kinds = sorted(rows.values_list("kind", flat=True))
    assert kinds == ["answer", "rewrite"]
    rewrite = rows.get(kind="rewrite")
    assert rewrite.prompt_tokens > 0 and rewrite.gpu_seconds > 0 and rewrite.mode == ""

    # Through the API: the same meter, charged to the token as well.
    account = service_account("finance-erp", departments["finance"])
    secret = token_for(account, ["ask"])
    token = ApiToken.objects.get(prefix=secret.split(".")[0])
    for stream in (False, True):
        response = api(secret).post(
            "/api/v1/ask", {"question": QUESTION, "stream": stream}, format="json"
        )
        assert response.status_code == 200
        if stream:
            b"".join(response.streaming_content)  # type: ignore[attr-defined]
    charged = UsageRecord.objects.filter(api_token=token)
    assert charged.count() == 2
    assert {r.user_name for r in charged} == {"finance-erp"}
    assert {r.department_id for r in charged} == {departments["finance"].pk}
    assert {r.api_token_prefix for r in charged} == {token.prefix}
    # The API's own usage endpoint counts what the meter counted.
    metered_in = sum(r.prompt_tokens for r in charged)
    metered_out = sum(r.completion_tokens for r in charged)
    usage = TokenUsage.objects.get(token=token, action="ask")
    assert (usage.requests, usage.prompt_tokens, usage.completion_tokens) == (
        2,
        metered_in,
        metered_out,
    )
    listed = api(secret).get("/api/v1/usage").json()["usage"]
    assert (listed[0]["prompt_tokens"], listed[0]["completion_tokens"]) == (
        metered_in,
        metered_out,
    )
    assert metered_out > 0


def test_over_the_hard_quota_the_model_is_not_called(
    indexed_policy: None,
    alice: User,
    frank: User,
    departments: dict[str, Department],
    llm: Any,
    model_calls: list[str],
    client: Client,
) -> None:
    finance = departments["finance"]
    DepartmentQuota.objects.create(department=finance, soft_limit_tokens=50, hard_limit_tokens=100)
    _meter_row(finance, alice, prompt_tokens=80, completion_tokens=20)  # exactly the limit

    answer = answer_question(frank, QUESTION)
    assert model_calls == []
    assert answer.mode == "extractive" and answer.model == ""
    assert answer.cited and "180 EUR" in answer.text  # the passages, cited
    month = current_month()
    assert answer.notice == NOTICE_HARD % {
        "department": "Finance",
        "limit": "100",
        "used": "100",
        "resets": month.next().first_day.isoformat(),
    }
    assert "Finance" in answer.notice and "100 tokens" in answer.notice
    assert month.next().first_day.isoformat() in answer.notice
    row = UsageRecord.objects.get(turn_id=answer.turn_id or 0)
    assert (row.mode, row.endpoint, row.tokens, row.gpu_seconds) == ("extractive", "", 0, 0.0)

    # A follow-up is not rewritten by the model either, and the portal shows the notice.
    client.force_login(frank)
    response = client.post(
        "/", {"question": "And per night?", "conversation": answer.conversation_id}
    )
    assert response.status_code == 200
    assert model_calls == []
    assert "has used its monthly limit of 100 tokens" in response.content.decode()

    # Audited once for the month, however many answers hit the limit.
    reached = AuditRecord.objects.filter(action="usage.hard_quota_reached")
    assert reached.count() == 1
    assert reached.get().department_id == finance.pk
    assert json.loads(reached.get().details_json)["month"] == month.label

    # Raising the limit lets Finance's answers through again at once.
    DepartmentQuota.objects.filter(department=finance).update(hard_limit_tokens=10_000)
    again = answer_question(frank, QUESTION)
    assert again.mode == "generated" and model_calls == ["stream"]
    assert again.notice.startswith("Finance has passed its soft monthly limit of 50 tokens")


def test_the_soft_quota_gives_a_notice_and_one_audit_record_a_month(
    indexed_policy: None, alice: User, departments: dict[str, Department], llm: Any
) -> None:
    finance = departments["finance"]
    DepartmentQuota.objects.create(department=finance, soft_limit_tokens=10)
    # Last month's tokens do not count against this month.
    old = _meter_row(finance, alice, prompt_tokens=500)
    UsageRecord.objects.filter(pk=old.pk).update(
        created_at=current_month().start - timedelta(hours=1)
    )
    first = answer_question(alice, QUESTION)
    assert first.mode == "generated" and first.notice == ""
    assert not AuditRecord.objects.filter(action="usage.soft_quota_reached").exists()

    used = sum(r.tokens for r in UsageRecord.objects.filter(created_at__gte=current_month().start))
    assert used >= 10  # the first answer crossed the line
    second = answer_question(alice, QUESTION)
    third = answer_question(alice, QUESTION)
    assert second.mode == third.mode == "generated"
    assert second.notice == NOTICE_SOFT % {
        "department": "Finance",
        "limit": "10",
        "used": f"{used:,}",
        "resets": current_month().next().first_day.isoformat(),
    }
    assert "Finance" in third.notice
    records = AuditRecord.objects.filter(action="usage.soft_quota_reached")
    assert records.count() == 1
    assert records.get().department_id == finance.pk
    # The stored English notice is shown as it is where no translation exists.
    assert localized_notice(second.notice) == second.notice


def test_report_page_csv_and_command_give_the_metered_numbers(
    departments: dict[str, Department], alice: User, frank: User, client: Client
) -> None:
    finance, engineering = departments["finance"], departments["engineering"]
    account = service_account("finance-erp", finance)
    token = ApiToken.objects.get(prefix=token_for(account, ["ask"]).split(".")[0])
    rows = [
        _meter_row(finance, alice, prompt_tokens=120, completion_tokens=30, gpu_seconds=1.5),
        _meter_row(finance, alice, kind="rewrite", mode="", prompt_tokens=40, completion_tokens=8),
        _meter_row(finance, frank, mode="extractive", endpoint="", model=""),
        _meter_row(
            finance,
            account.user,
            api_token=token,
            api_token_prefix=token.prefix,
            prompt_tokens=200,
            completion_tokens=50,
            gpu_seconds=2.25,
        ),
        _meter_row(engineering, None, prompt_tokens=999, completion_tokens=999),
    ]
    last_month = _meter_row(finance, alice, prompt_tokens=7000)
    UsageRecord.objects.filter(pk=last_month.pk).update(
        created_at=current_month().start - timedelta(days=2)
    )
    ours = [r for r in rows if r.department_id == finance.pk]
    expected = {
        "questions": sum(1 for r in ours if r.kind == "answer"),
        "generated": sum(1 for r in ours if r.mode == "generated"),
        "extractive": sum(1 for r in ours if r.mode == "extractive"),
        "prompt_tokens": sum(r.prompt_tokens for r in ours),
        "completion_tokens": sum(r.completion_tokens for r in ours),
        "gpu_seconds": sum(r.gpu_seconds for r in ours),
    }
    DepartmentQuota.objects.create(department=finance, soft_limit_tokens=400, hard_limit_tokens=900)
    month = current_month().label

    admin = _admin_of("fiona", finance)
    client.force_login(admin)
    page = client.get("/usage/d/finance/", {"month": month})
    assert page.status_code == 200
    report = page.context["report"]
    for name, value in expected.items():
        assert getattr(report.totals, name) == pytest.approx(value), name
    assert report.quota.used == expected["prompt_tokens"] + expected["completion_tokens"]
    assert report.quota.level == "soft"
    alice_row = next(t for t in report.users if t.name == "alice")
    assert alice_row.prompt_tokens == 160 and alice_row.questions == 1
    assert [(t.name, t.tokens) for t in report.tokens] == [(token.prefix, 250)]
    assert AuditRecord.objects.filter(action="usage.viewed", department_id=finance.pk).exists()

    # The overview lists only the admin's department.
    overview = client.get("/usage/", {"month": month})
    assert [r.department.slug for r in overview.context["reports"]] == ["finance"]

    download = client.get("/usage/csv/", {"month": month, "department": "finance"})
    assert download["Content-Type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(download.content.decode())))
    total = next(r for r in table if r["scope"] == "department")
    assert int(total["prompt_tokens"]) == expected["prompt_tokens"]
    assert int(total["questions"]) == expected["questions"]
    assert float(total["gpu_seconds"]) == pytest.approx(expected["gpu_seconds"])
    assert total["quota_state"] == "soft" and total["hard_limit_tokens"] == "900"
    assert {r["name"] for r in table if r["scope"] == "token"} == {token.prefix}
    assert AuditRecord.objects.filter(action="usage.exported").count() == 1

    out = io.StringIO()
    call_command("usage", "report", "--month", month, "--format", "json", stdout=out)
    listed = json.loads(out.getvalue())
    by_department = {r["department"]: r for r in listed if r["scope"] == "department"}
    assert by_department["finance"]["completion_tokens"] == expected["completion_tokens"]
    assert by_department["engineering"]["prompt_tokens"] == 999
    out = io.StringIO()
    call_command("usage", "report", "--month", month, "--department", "finance", stdout=out)
    assert out.getvalue() == download.content.decode()
    assert AuditRecord.objects.filter(action="usage.exported").count() == 3

    # Last month holds only the row moved there.
    previous = client.get("/usage/d/finance/", {"month": current_month().previous().label})
    assert previous.context["report"].totals.prompt_tokens == 7000
    with pytest.raises(CommandError, match="YYYY-MM"):
        call_command("usage", "report", "--month", "2026-1")
    with pytest.raises(CommandError, match="no department"):
        call_command("usage", "report", "--department", "nope")
    bad = client.get("/usage/", {"month": "2026-13"})
    assert bad.status_code == 400 and "is not a month" in bad.content.decode()


def test_the_cost_page_computes_the_documented_formula(
    departments: dict[str, Department], alice: User, client: Client, settings: Any
) -> None:
    settings.KB_COST_CURRENCY = "EUR"
    settings.KB_COST_HARDWARE_PRICE = 36000.0
    settings.KB_COST_HARDWARE_MONTHS = 36
    settings.KB_COST_POWER_WATTS = 800.0
    settings.KB_COST_POWER_PRICE_PER_KWH = 0.25
    settings.KB_COST_OPERATIONS_PER_MONTH = 200.0
    settings.KB_COST_API_INPUT_PRICE_PER_MILLION = 0.5
    settings.KB_COST_API_OUTPUT_PRICE_PER_MILLION = 2.0
    finance = departments["finance"]
    local = [
        _meter_row(finance, alice, prompt_tokens=1500, completion_tokens=300, gpu_seconds=4.0),
        _meter_row(finance, alice, prompt_tokens=900, completion_tokens=250, gpu_seconds=3.5),
        _meter_row(finance, alice, kind="rewrite", mode="", prompt_tokens=60, gpu_seconds=0.5),
        # The model failed mid-answer: the GPU was busy, the answer is passages.
        _meter_row(finance, alice, mode="extractive", gpu_seconds=1.0),
    ]
    _meter_row(finance, alice, mode="extractive", endpoint="")  # no model call: not counted
    _meter_row(finance, alice, endpoint="cloud", on_premises=False, prompt_tokens=5000)

    answers = sum(1 for r in local if r.kind == "answer")
    gpu = sum(r.gpu_seconds for r in local)
    tin = sum(r.prompt_tokens for r in local)
    tout = sum(r.completion_tokens for r in local)
    local_total = 36000 / 36 + 200 + 800 / 1000 * gpu / 3600 * 0.25
    api_total = tin / 1e6 * 0.5 + tout / 1e6 * 2.0

    auditor = _auditor()
    client.force_login(auditor)
    page = client.get("/usage/cost/")
    assert page.status_code == 200
    c = page.context["c"]
    assert (c.answers, c.prompt_tokens, c.completion_tokens) == (answers, tin, tout)
    assert c.gpu_seconds == pytest.approx(gpu)
    assert c.local_total == pytest.approx(local_total)
    assert c.local_per_thousand == pytest.approx(local_total / answers * 1000)
    assert c.api_per_thousand == pytest.approx(api_total / answers * 1000)
    assert c.external_prompt_tokens == 5000 and c.external_answers == 1
    body = page.content.decode()
    assert f"{local_total / answers * 1000:.2f}" in body and "EUR" in body
    assert "KB_COST_HARDWARE_PRICE" in body  # the inputs are shown with their names
    assert AuditRecord.objects.filter(action="usage.viewed", target_id="cost").exists()

    # The same function over the same month, with other inputs, scales as documented.
    doubled = compare(
        current_month(),
        CostInputs("EUR", 72000.0, 36, 800.0, 0.25, 200.0, 1.0, 4.0),
    )
    assert doubled.api_total == pytest.approx(2 * api_total)
    assert doubled.local_total == pytest.approx(local_total + 1000)
    # An empty month has nothing to spread the cost over.
    empty = client.get("/usage/cost/", {"month": "2001-01"})
    assert empty.context["c"].local_per_thousand is None
    assert parse_month("2001-01").next().label == "2001-02"


def test_who_may_see_usage_and_change_quotas(
    departments: dict[str, Department], frank: User, client: Client
) -> None:
    finance = departments["finance"]
    engineering_admin = _admin_of("eddie", departments["engineering"])
    client.force_login(engineering_admin)
    assert client.get("/usage/").status_code == 200
    refused = client.get("/usage/d/finance/")
    assert refused.status_code == 404
    denial = AuditRecord.objects.filter(action="access.denied").latest("seq")
    assert denial.department_id == finance.pk and denial.actor == "eddie"
    assert client.get("/usage/csv/", {"department": "finance"}).status_code == 404
    assert client.get("/usage/cost/").status_code == 404
    assert client.post("/usage/d/engineering/quota/", {"hard_limit_tokens": 5}).status_code == 404
    assert not DepartmentQuota.objects.exists()

    client.force_login(frank)  # a member: no usage pages at all
    assert client.get("/usage/").status_code == 404
    assert AuditRecord.objects.filter(action="access.denied", actor="frank").exists()

    auditor = _auditor()
    client.force_login(auditor)
    assert client.get("/usage/d/finance/").status_code == 200
    assert client.get("/usage/d/finance/").context["quota_form"] is None
    assert client.post("/usage/d/finance/quota/", {"hard_limit_tokens": 5}).status_code == 404

    root = User.objects.create_superuser("root", password="root-password-1")
    client.force_login(root)
    mixed_up = client.post(
        "/usage/d/finance/quota/", {"soft_limit_tokens": 900, "hard_limit_tokens": 100}
    )
    assert mixed_up.status_code == 400 and not DepartmentQuota.objects.exists()
    saved = client.post(
        "/usage/d/finance/quota/", {"soft_limit_tokens": 100, "hard_limit_tokens": 900}
    )
    assert saved.status_code == 302
    quota = DepartmentQuota.objects.get(department=finance)
    assert (quota.soft_limit_tokens, quota.hard_limit_tokens) == (100, 900)
    changed = AuditRecord.objects.get(action="usage.quota_changed")
    assert changed.department_id == finance.pk and changed.actor == "root"
    assert json.loads(changed.details_json)["hard_limit_tokens"] == 900


def test_an_external_endpoint_costs_tokens_but_no_gpu_seconds(
    alice: User, departments: dict[str, Department], llm_server_url: str
) -> None:
    """The meter follows the routing decision: an external endpoint (here the same llama.cpp
    server, declared external) is charged its tokens and no local GPU time; an on-premises
    fallback after it fails is charged both."""
    from kb.accounts.models import Clearance
    from kb.routing.policy import EXTERNAL, ON_PREMISES, Endpoint, RoutingDecision
    from kb.usage.meter import admit, record_usage
    from tests.llm_server import free_port

    def endpoint(name: str, location: str, url: str) -> Endpoint:
        model = OpenAICompatibleLLM(url, "gemma-3-270m", max_tokens=16, max_retries=0)
        return Endpoint(name, location, int(Clearance.PUBLIC), model)

    messages = [
        {"role": "system", "content": "Answer from the source."},
        {"role": "user", "content": "Source: the hotel limit is 180 EUR.\n\n" + QUESTION},
    ]
    for chosen, fallbacks in (
        (endpoint("cloud", EXTERNAL, llm_server_url), []),
        (
            endpoint("cloud", EXTERNAL, f"http://127.0.0.1:{free_port()}/v1"),  # down
            [endpoint("gpu-2", ON_PREMISES, llm_server_url)],
        ),
    ):
        meter = admit(alice)
        route = meter.wrap_route(RoutingDecision(0, chosen, "test", fallbacks))
        items = list(route.stream(messages))
        assert isinstance(items[-1], Completion), items
        record_usage(meter, services.Answer("q", "hello", "generated"), None)
    external, fallback = UsageRecord.objects.order_by("pk")
    assert (external.endpoint, external.on_premises, external.gpu_seconds) == ("cloud", False, 0)
    assert external.completion_tokens > 0
    assert (fallback.endpoint, fallback.on_premises) == ("gpu-2", True)
    assert fallback.gpu_seconds > 0 and fallback.completion_tokens > 0
    assert fallback.department_id == departments["finance"].pk
