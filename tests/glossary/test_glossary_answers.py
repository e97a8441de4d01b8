"""Department glossaries in answering: the real embedding model and index, the real
PostgreSQL, and llama.cpp's OpenAI-compatible server for what reaches the model."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from inference.llm import Completion, Delta, OpenAICompatibleLLM
from kb.accounts.models import Department
from kb.answering import answers as services
from kb.glossary.models import GlossaryEntry
from kb.glossary.services import terms_for_question
from kb.library.models import Collection
from kb.routing import clients
from tests.api.conftest import api, service_account, token_for
from tests.asking import answer_question
from tests.ingesting import ingest_text

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "What is the PO approval limit?"


@pytest.fixture
def documents(fresh_index: None, finance_collection: Collection) -> dict[str, int]:
    """A rule that says "purchase order" only in Chinese, beside English policies that share
    the question's other words."""
    return {
        "po": ingest_text(
            finance_collection,
            "采购规定.md",
            "# 采购规定\n\n超过五万欧元的采购订单须由财务总监审批。\n",
        ),
        "travel": ingest_text(
            finance_collection,
            "travel.md",
            "# Travel policy\n\nThe hotel limit is 180 EUR per night in Munich.\n",
        ),
    }


def po_entry(department: Department) -> GlossaryEntry:
    return GlossaryEntry.objects.create(
        department=department,
        term="purchase order",
        abbreviations="PO",
        term_en="purchase order",
        term_zh="采购订单",
    )


def found(user: User, question: str = QUESTION) -> set[int]:
    return {s.document_id for s in answer_question(user, question).sources}


def test_a_glossary_entry_lets_an_english_abbreviation_find_a_chinese_rule(
    documents: dict[str, int], departments: dict[str, Department], frank: User
) -> None:
    assert documents["po"] not in found(frank)
    po_entry(departments["finance"])
    assert documents["po"] in found(frank)
    # The dense query is still the question: the English policy is not pushed out.
    assert documents["travel"] in found(frank, "What is the hotel limit in Munich?")


def test_passage_search_in_the_portal_and_the_api_uses_the_glossary_too(
    documents: dict[str, int], departments: dict[str, Department], frank: User
) -> None:
    client = Client()
    client.force_login(frank)

    def portal_finds_the_rule() -> bool:
        page = client.get(reverse("portal:search"), {"q": QUESTION}).content.decode()
        return "采购订单" in page

    assert not portal_finds_the_rule()
    po_entry(departments["finance"])
    assert portal_finds_the_rule()
    # An ERP integration that belongs to Finance: Finance's glossary is its glossary.
    token = token_for(service_account("finance-erp", departments["finance"]), ["search"])
    response = api(token).post("/api/v1/search", {"query": QUESTION}, format="json")
    assert response.status_code == 200, response.content
    assert documents["po"] in {p["document_id"] for p in response.json()["passages"]}


def test_another_departments_glossary_does_not_apply(
    documents: dict[str, int], departments: dict[str, Department], frank: User, erin: User
) -> None:
    po_entry(departments["engineering"])  # erin's department, not frank's
    assert documents["po"] not in found(frank)
    assert terms_for_question(frank, QUESTION) == []
    assert [t.chinese for t in terms_for_question(erin, QUESTION)] == ["采购订单"]
    # Erin's glossary widens her search, never her scope: Finance's rule stays out of reach.
    assert found(erin) == set()


@pytest.fixture
def prompts_to_server(
    monkeypatch: pytest.MonkeyPatch, settings: Any, llm_server_url: str
) -> Iterator[list[list[dict[str, str]]]]:
    """The real llama.cpp server, with the messages the product sends it recorded."""
    seen: list[list[dict[str, str]]] = []

    class Recording(OpenAICompatibleLLM):
        def stream(self, messages: list[dict[str, str]]) -> Iterator[Delta | Completion]:
            seen.append(messages)
            yield from super().stream(messages)

    model = Recording(llm_server_url, "gemma-3-270m", max_tokens=32)
    monkeypatch.setattr(services, "get_chat_model", lambda: model)
    clients.chat_model_version.cache_clear()
    yield seen
    clients.chat_model_version.cache_clear()


def test_the_matched_entries_reach_the_model_with_the_sources(
    documents: dict[str, int],
    departments: dict[str, Department],
    frank: User,
    prompts_to_server: list[list[dict[str, str]]],
) -> None:
    po_entry(departments["finance"])
    GlossaryEntry.objects.create(department=departments["finance"], term="invoice")
    answer = answer_question(frank, QUESTION)
    assert answer.mode == "generated", answer.notice
    [messages] = prompts_to_server
    user = messages[-1]["content"]
    assert "<glossary>\n- purchase order | preferred English: purchase order | " in user
    assert "preferred Chinese: 采购订单 | abbreviations: PO\n</glossary>" in user
    assert "invoice" not in user  # only what the question mentions
    assert "超过五万欧元的采购订单" in user  # the source the glossary found
