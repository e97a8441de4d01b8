"""The supervised llama.cpp server of the embedded default, with real processes and the tiny
Gemma GGUF: killed with SIGKILL or crashing with SIGSEGV, it is started again, questions in
between fail at once with the reason (never hang), and it never outlives its parent."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from inference.llama_server import LlamaServerSupervisor, Phase, SupervisedChatModel
from inference.llm import Completion, LLMUnavailable, ModelRestarting, OpenAICompatibleLLM

pytest.importorskip("llama_cpp.server", reason="install the llamacpp extra")

HELLO = [{"role": "user", "content": "Say hello."}]
ROOT = Path(__file__).resolve().parents[2]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    """Running (an orphan's zombie, left to whoever reaps it here, counts as ended)."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def server(gguf_path: Path, tmp_path: Path) -> Iterator[LlamaServerSupervisor]:
    supervisor = LlamaServerSupervisor(gguf_path, tmp_path / "llama-server.log").start()
    ready = supervisor.wait_until_ready(120)
    assert ready.ready, f"the server did not start:\n{supervisor.log_tail()}"
    yield supervisor
    supervisor.stop()


def chat_model(
    server: LlamaServerSupervisor, clients_built: list[str] | None = None
) -> SupervisedChatModel:
    """`clients_built` receives the URL of every client the model builds to call the server."""

    def client_for(url: str) -> OpenAICompatibleLLM:
        if clients_built is not None:
            clients_built.append(url)
        return OpenAICompatibleLLM(url, server.model_alias, timeout=60, max_tokens=16)

    return SupervisedChatModel(server, client_for)


@pytest.mark.parametrize("crash", [signal.SIGKILL, signal.SIGSEGV], ids=["SIGKILL", "SIGSEGV"])
def test_a_killed_server_is_restarted_and_answers_again(
    server: LlamaServerSupervisor, crash: signal.Signals
) -> None:
    clients_built: list[str] = []
    model = chat_model(server, clients_built)
    assert model.complete(HELLO).answer.strip()
    first = server.state()
    assert first.pid is not None

    os.kill(first.pid, crash)
    wait_for(lambda: server.state().phase is Phase.RESTARTING, "the exit to be noticed")
    # Meanwhile a question fails at once, saying why, instead of waiting on a dead port:
    # no client is even built to call it.
    calls_before = len(clients_built)
    with pytest.raises(ModelRestarting) as refused:
        model.complete(HELLO)
    reason = str(refused.value)
    assert f"restarting after it stopped (signal {int(crash)} ({crash.name}))" in reason
    assert "answers show passages meanwhile" in reason
    with pytest.raises(ModelRestarting, match="restarting"):
        list(model.stream(HELLO))
    assert len(clients_built) == calls_before, "a question was sent to the restarting model"

    after = server.wait_until_ready(120)
    assert after.ready, f"not restarted:\n{server.log_tail()}"
    assert after.pid != first.pid and not alive(first.pid)
    assert after.base_url == first.base_url  # the same port: clients need not change
    assert after.restarts == 1 and crash.name in after.summary()
    assert model.complete(HELLO).answer.strip()
    *_, last = model.stream(HELLO)
    assert isinstance(last, Completion) and last.answer.strip()


def test_a_port_taken_while_the_server_was_down_moves_it(gguf_path: Path, tmp_path: Path) -> None:
    server = LlamaServerSupervisor(
        gguf_path, tmp_path / "llama-server.log", first_restart_pause=2.0
    ).start()
    try:
        first = server.wait_until_ready(120)
        assert first.ready and first.pid is not None, server.log_tail()
        port = int(first.base_url.rsplit(":", 1)[1].split("/")[0])
        os.kill(first.pid, signal.SIGKILL)
        wait_for(lambda: server.state().phase is Phase.RESTARTING, "the exit to be noticed")
        with socket.socket() as squatter:
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(("127.0.0.1", port))
            squatter.listen()
            moved = server.wait_until_ready(120)
            assert moved.ready, server.log_tail()
            assert moved.base_url != first.base_url
            # The chat model follows base_url.
            assert chat_model(server).complete(HELLO).answer.strip()
    finally:
        server.stop()


def test_stop_ends_the_server_and_questions_say_so(server: LlamaServerSupervisor) -> None:
    pid = server.state().pid
    assert pid is not None
    server.stop()
    assert not alive(pid)
    assert server.state().phase is Phase.STOPPED
    with pytest.raises(LLMUnavailable, match="stopped"):
        chat_model(server).complete(HELLO)


def test_the_server_does_not_outlive_a_parent_killed_with_sigkill(
    gguf_path: Path, tmp_path: Path
) -> None:
    # A parent killed outright runs no atexit handler: the kernel ends the server
    # (PR_SET_PDEATHSIG).
    parent_script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from inference.llama_server import LlamaServerSupervisor

        server = LlamaServerSupervisor(Path({str(gguf_path)!r}), Path({str(tmp_path)!r}) / "log")
        state = server.start().wait_until_ready(120)
        print(state.pid if state.ready else "not ready", flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_script], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline().strip()
        assert line.isdigit(), f"the parent's server did not start: {line!r}"
        child = int(line)
        assert alive(child)
        parent.kill()
        parent.wait(30)
        wait_for(lambda: not alive(child), "the server to end with its parent", timeout=30)
    finally:
        parent.kill()
        parent.wait(30)
