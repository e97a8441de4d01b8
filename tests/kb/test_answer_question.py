"""answer_question through the real OpenAI-compatible server, and its degradation paths."""

from __future__ import annotations

import re
from collections.abc import Iterator
from io import BytesIO
from typing import Any

import pytest
from django.contrib.auth.models import User

from kb.library.ingestion import ingest_version
from kb.library.models import Collection
from kb.library.services import upload_document
from kb.portal import services
from tests.llm_server import free_port

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def indexed_policy(fresh_index: None, finance_collection: Collection) -> None:
    text = b"# Travel policy\n\n## Hotels\n\nThe hotel limit is 180 EUR per night in Munich.\n"
    result = upload_document(
        collection=finance_collection,
        name="travel.md",
        stream=BytesIO(text),
        size=len(text),
        uploaded_by_id=None,
    )
    assert ingest_version(result.version.pk) == "indexed"


@pytest.fixture
def llm_at(settings: Any) -> Iterator[Any]:
    services.get_chat_model.cache_clear()
    yield settings
    services.get_chat_model.cache_clear()


def test_generated_answer_through_the_openai_compatible_server(
    indexed_policy: None, alice: User, llm_at: Any, llm_server_url: str
) -> None:
    llm_at.LLM_BASE_URL = llm_server_url
    llm_at.LLM_MODEL = "gemma-3-270m"
    llm_at.LLM_MAX_TOKENS = 64
    answer = services.answer_question(alice, "What is the hotel limit in Munich?")
    assert answer.mode == "generated", answer.notice
    assert answer.text and "<think>" not in answer.text
    assert "gemma" in answer.model
    assert answer.sources and "180 EUR" in answer.sources[0].text
    # Whatever the model wrote, every surviving citation points at a retrieved source.
    for number in re.findall(r"\[(\d+)\]", answer.text):
        assert 1 <= int(number) <= len(answer.sources)


def test_llm_down_degrades_to_extractive_passages(
    indexed_policy: None, alice: User, llm_at: Any
) -> None:
    llm_at.LLM_BASE_URL = f"http://127.0.0.1:{free_port()}/v1"
    llm_at.LLM_TIMEOUT_SECONDS = 2
    answer = services.answer_question(alice, "What is the hotel limit in Munich?")
    assert answer.mode == "extractive"
    assert "unavailable" in answer.notice
    assert "180 EUR" in answer.text and "[1]" in answer.text


def test_nothing_relevant_in_scope_says_so(indexed_policy: None, erin: User) -> None:
    answer = services.answer_question(erin, "What is the hotel limit in Munich?")
    assert answer.mode == "not_found"
    assert answer.sources == []
