"""A crashing language model never takes the portal down.

`manage.py serve` with LLM_GGUF_PATH (the embedded default, as `make run` starts it, with the
tiny Gemma GGUF) runs llama.cpp's server as a supervised child process. The test kills that
child with SIGKILL and crashes it with SIGSEGV while the portal serves, and checks over HTTP
that the portal process lives on, that a question asked meanwhile gets the cited passages
with a notice, that readiness names the restart and the signal, and that answers are
generated again once the supervisor has started the server again. Stopping the portal stops
the model too.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
import requests

from tests.e2e.test_embedded_run import login
from tests.llm_server import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e
QUESTION = "Who approves invoices above 50,000 EUR?"


def portal_env(data_dir: Path, gguf: Path) -> dict[str, str]:
    """The embedded default (SQLite, queue in files, Qdrant Edge in process) with the local
    model; MiniLM embeds, as in the rest of the suite, to keep the run short."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "CELERY_", "QDRANT_", "LLM_", "KB_", "DJANGO_"))
    }
    env |= {
        "KB_DATA_DIR": str(data_dir),
        "LLM_GGUF_PATH": str(gguf),
        "LLM_MAX_TOKENS": "48",
        "EMBEDDING_MODEL": "all-MiniLM-L6-v2",
        "HF_HUB_OFFLINE": "1",
    }
    return env


def wait_for(condition: Callable[[], object], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def ask(session: requests.Session, base: str) -> tuple[str, str, str]:
    """The answer's mode, its text and its notice, as the portal renders them."""
    response = session.post(
        f"{base}/",
        data={"question": QUESTION, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": f"{base}/"},
        timeout=120,
    )
    assert response.status_code == 200
    answer = re.search(r'<div class="answer-text (\w+)">(.*?)</div>', response.text, re.S)
    assert answer, response.text[:3000]
    notice = re.search(r'<p class="notice">(.*?)</p>', response.text, re.S)
    return answer.group(1), answer.group(2), notice.group(1) if notice else ""


def model_check(base: str) -> dict[str, str]:
    body = requests.get(f"{base}/readyz", timeout=30).json()
    return dict(body["checks"]["llm"])


def model_process(portal: subprocess.Popen[bytes]) -> psutil.Process | None:
    for child in psutil.Process(portal.pid).children(recursive=True):
        try:
            if "llama_cpp.server" in child.cmdline() and child.status() != psutil.STATUS_ZOMBIE:
                return child
        except psutil.NoSuchProcess:
            continue
    return None


def running(process: psutil.Process) -> bool:
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def test_the_portal_outlives_a_killed_and_a_crashing_model(tmp_path: Path, gguf_path: Path) -> None:
    pytest.importorskip("llama_cpp.server", reason="install the llamacpp extra")
    env = portal_env(tmp_path / "data", gguf_path)
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, cwd=ROOT, check=True)
    subprocess.run(
        [*manage, "seed_demo", "--no-ingest"], env=env, cwd=ROOT, check=True, capture_output=True
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve_log = tmp_path / "serve.log"
    with serve_log.open("wb") as out:
        portal = subprocess.Popen(
            [*manage, "serve", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def portal_answers() -> bool:
        assert portal.poll() is None, serve_log.read_text()[-3000:]
        try:
            return requests.get(f"{base}/login/", timeout=5).status_code == 200
        except requests.ConnectionError:
            return False

    model: psutil.Process | None = None
    try:
        wait_for(portal_answers, "the portal to serve")
        # serve says where the model serves and where its log is.
        announced = re.search(
            r"Language model: llama\.cpp server for (\S+) at (\S+) .*log: (\S+)\)",
            serve_log.read_text(),
        )
        assert announced, serve_log.read_text()[-3000:]
        model_log = Path(announced.group(3))

        alice = requests.Session()
        login(alice, base, "alice", "alice-demo-2026")
        collections = alice.get(f"{base}/collections/").text
        finance = re.search(r'href="/collections/(\d+)/">Finance policies', collections)
        assert finance, collections[:2000]
        status_url = f"{base}/collections/{finance.group(1)}/status/"
        wait_for(
            lambda: {d["status"] for d in alice.get(status_url).json()["documents"]} == {"indexed"},
            "the sample documents to be indexed",
            timeout=300,
        )
        wait_for(lambda: model_check(base)["status"] == "up", "the model to be ready")
        mode, text, _ = ask(alice, base)
        assert mode == "generated", text

        for crash in (signal.SIGKILL, signal.SIGSEGV):
            model = model_process(portal)
            assert model is not None, "no llama.cpp server under the portal"
            model.send_signal(crash)
            expected = f"signal {int(crash)} ({crash.name})"
            wait_for(
                lambda: expected in model_check(base)["detail"],  # noqa: B023 (used at once)
                f"readiness to report the restart after {crash.name}",
                timeout=30,
            )
            # The portal is the same process, and answers: the passages, with a notice.
            assert portal.poll() is None, serve_log.read_text()[-3000:]
            assert requests.get(f"{base}/login/", timeout=10).status_code == 200
            mode, text, notice = ask(alice, base)
            assert mode == "extractive", f"answered {mode} while the model restarted: {text}"
            assert "CFO" in text
            assert "language model is restarting" in notice, notice
            # Then the supervisor has the model back, and answers are written by it again.
            wait_for(
                lambda: model_check(base)["status"] == "up",
                f"the model to be restarted after {crash.name}",
            )
            mode, text, _ = ask(alice, base)
            assert mode == "generated", text
            assert portal.poll() is None
        assert "restarted 2 times" in model_check(base)["detail"]
        assert model_log.is_file() and "llama_cpp.server" in model_log.read_text()

        # A service manager's SIGTERM stops the portal as Ctrl+C does, and the model with it.
        # (Not SIGINT here: a shell that starts a job in the background, as CI may, makes it
        # ignore SIGINT, and Python then leaves SIGINT ignored.)
        model = model_process(portal)
        assert model is not None
        portal.send_signal(signal.SIGTERM)
        try:
            portal.wait(90)
        except subprocess.TimeoutExpired:
            portal.send_signal(signal.SIGUSR1)  # serve dumps its threads' stacks
            time.sleep(2)
            pytest.fail(f"the portal did not stop on SIGTERM:\n{serve_log.read_text()[-8000:]}")
        wait_for(lambda: not running(model), "the model to stop with the portal", 30)
    finally:
        if portal.poll() is None:
            portal.kill()
            portal.wait(30)
        if model is not None and running(model):
            model.kill()
