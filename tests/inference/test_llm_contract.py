"""One contract for every chat model: an OpenAI-compatible server (vLLM's stand-in), and the
same server as the embedded default runs it, a supervised child process behind
`SupervisedChatModel`.

The server is llama.cpp's own OpenAI-compatible server, the closest real stand-in for vLLM
that runs here; the model is the tiny Gemma 3 270M GGUF shipped through pip.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from inference.answering import Source, build_messages
from inference.llama_server import LlamaServerSupervisor, SupervisedChatModel
from inference.llm import (
    ChatModel,
    Completion,
    Delta,
    LLMUnavailable,
    OpenAICompatibleLLM,
    thinks_before_answering,
)
from tests.llm_server import free_port, llama_cpp_server


@pytest.fixture(scope="module")
def supervised_server(
    gguf_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServerSupervisor]:
    pytest.importorskip("llama_cpp.server", reason="install the llamacpp extra")
    log = tmp_path_factory.mktemp("supervised") / "llama-server.log"
    server = LlamaServerSupervisor(gguf_path, log).start()
    state = server.wait_until_ready(120)
    assert state.ready, f"the supervised server did not start:\n{server.log_tail()}"
    yield server
    server.stop()


@pytest.fixture(params=["openai-compatible-server", "supervised-llama-server"])
def chat_model(request: pytest.FixtureRequest) -> ChatModel:
    if request.param == "openai-compatible-server":
        url = request.getfixturevalue("llm_server_url")
        return OpenAICompatibleLLM(url, "gemma-3-270m", timeout=60, max_tokens=64)
    server: LlamaServerSupervisor = request.getfixturevalue("supervised_server")
    return SupervisedChatModel(
        server, lambda url: OpenAICompatibleLLM(url, server.model_alias, timeout=60, max_tokens=64)
    )


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


def test_a_server_that_cannot_start_raises_llm_unavailable_with_the_reason(
    tmp_path: Path,
) -> None:
    # The file vanished after start-up checked it: the server exits, and is tried again.
    pytest.importorskip("llama_cpp.server", reason="install the llamacpp extra")
    server = LlamaServerSupervisor(tmp_path / "missing.gguf", tmp_path / "llama.log").start()
    try:
        model = SupervisedChatModel(
            server, lambda url: OpenAICompatibleLLM(url, "m"), first_start_wait=0
        )
        deadline = time.monotonic() + 60
        while not server.state().last_exit:
            assert time.monotonic() < deadline, f"it never exited:\n{server.log_tail()}"
            time.sleep(0.1)
        with pytest.raises(LLMUnavailable, match=r"restarting after it stopped \(exit code"):
            model.complete([{"role": "user", "content": "hi"}])
        assert "missing.gguf" in server.log_tail()
    finally:
        server.stop()


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
    if isinstance(chat_model, SupervisedChatModel):
        # llama.cpp's server sends no usage in streams (vLLM does): its tokenizer counts it.
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
