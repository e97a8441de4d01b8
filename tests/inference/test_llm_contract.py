"""One contract, two LLM backends: an OpenAI-compatible server process and llama.cpp in-process.

The server is llama.cpp's own OpenAI-compatible server, the closest real stand-in for vLLM
that runs here; the model is the tiny Gemma 3 270M GGUF shipped through pip.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

from inference.answering import Source, build_messages
from inference.llm import (
    ChatModel,
    Completion,
    Delta,
    LlamaCppLLM,
    LLMUnavailable,
    OpenAICompatibleLLM,
    thinks_before_answering,
)
from tests.llm_server import free_port, llama_cpp_server


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


def collect(model: ChatModel, messages: list[dict[str, str]]) -> tuple[list[Delta], Completion]:
    deltas: list[Delta] = []
    for item in model.stream(messages):
        if isinstance(item, Completion):
            return deltas, item
        deltas.append(item)
    raise AssertionError("the stream ended without a Completion")


def test_streams_the_answer_in_pieces_then_the_whole(chat_model: ChatModel) -> None:
    sources = [Source(1, 1, 1, "Travel policy", 1, "Hotels", "The hotel limit is 180 EUR.", 0.9)]
    deltas, completion = collect(chat_model, build_messages("What is the hotel limit?", sources))
    answer_pieces = [d.text for d in deltas if d.kind == "answer"]
    assert len(answer_pieces) > 1  # really streamed, not one block at the end
    assert "".join(answer_pieces).strip() == completion.answer
    assert completion.answer and "<think>" not in completion.answer
    assert 0 < completion.completion_tokens <= 64
    if isinstance(chat_model, LlamaCppLLM):
        # llama.cpp's server sends no usage in streams (vLLM does); in-process we count it.
        assert completion.prompt_tokens > 20


def test_a_server_that_never_answers_times_out() -> None:
    # A real socket that accepts the connection and then says nothing.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
        model = OpenAICompatibleLLM(url, "m", timeout=1.5, max_retries=1)
        started = time.monotonic()
        with pytest.raises(LLMUnavailable):
            collect(model, [{"role": "user", "content": "hi"}])
        # One try and one bounded retry, each cut at the timeout: no hanging request.
        assert time.monotonic() - started < 15


def test_an_absent_server_fails_the_stream_cleanly() -> None:
    model = OpenAICompatibleLLM(f"http://127.0.0.1:{free_port()}/v1", "m", timeout=2, max_retries=0)
    with pytest.raises(LLMUnavailable, match="unreachable"):
        collect(model, [{"role": "user", "content": "hi"}])


def test_a_server_killed_mid_answer_raises_llm_unavailable(gguf_path: Path, tmp_path: Path) -> None:
    processes: list[subprocess.Popen[bytes]] = []
    with llama_cpp_server(gguf_path, tmp_path / "llm.log", processes) as url:
        model = OpenAICompatibleLLM(url, "gemma-3-270m", timeout=30, max_tokens=400)
        prompt = [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Write a long story about a lighthouse keeper."},
        ]
        received: list[Delta] = []
        with pytest.raises(LLMUnavailable, match="cut off"):
            for item in model.stream(prompt):
                assert isinstance(item, Delta), "the answer finished before the server was killed"
                received.append(item)
                if len(received) == 3:
                    processes[0].kill()
        assert len(received) >= 3


def test_r1_models_are_recognised_by_name() -> None:
    assert thinks_before_answering("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B")
    assert thinks_before_answering("DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M.gguf")
    assert not thinks_before_answering("gemma-3-270m")
