"""One contract, two LLM backends: an OpenAI-compatible server process and llama.cpp in-process.

The server is llama.cpp's own OpenAI-compatible server, the closest real stand-in for vLLM
that runs here; the model is the tiny Gemma 3 270M GGUF shipped through pip.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from inference.answering import Source, build_messages
from inference.llm import ChatModel, LlamaCppLLM, LLMUnavailable, OpenAICompatibleLLM
from tests.llm_server import free_port


@pytest.fixture(params=["openai-compatible-server", "llama-cpp-in-process"])
def chat_model(request: pytest.FixtureRequest, gguf_path: Path) -> ChatModel:
    if request.param == "openai-compatible-server":
        url = request.getfixturevalue("llm_server_url")
        return OpenAICompatibleLLM(url, "gemma-3-270m", timeout=60, max_tokens=64)
    return LlamaCppLLM(gguf_path, context_tokens=4096, max_tokens=64)


def test_completes_a_grounded_prompt_and_counts_tokens(chat_model: ChatModel) -> None:
    sources = [Source(1, 1, 1, "Travel policy", 1, "Hotels", "The hotel limit is 180 EUR.", 0.9)]
    completion = chat_model.complete(build_messages("What is the hotel limit?", sources))
    assert completion.answer.strip()
    assert "<think>" not in completion.answer
    assert completion.prompt_tokens > 20
    assert 0 < completion.completion_tokens <= 64
    assert completion.model


def test_an_unreachable_server_raises_llm_unavailable() -> None:
    model = OpenAICompatibleLLM(f"http://127.0.0.1:{free_port()}/v1", "m", timeout=2, max_retries=0)
    with pytest.raises(LLMUnavailable, match="unreachable"):
        model.complete([{"role": "user", "content": "hi"}])


def test_a_missing_gguf_raises_llm_unavailable(tmp_path: Path) -> None:
    with pytest.raises(LLMUnavailable, match="not found"):
        LlamaCppLLM(tmp_path / "missing.gguf").complete([{"role": "user", "content": "hi"}])
