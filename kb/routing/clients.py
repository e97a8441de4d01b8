"""The one place language-model clients are built.

Every model the product talks to is an OpenAI-compatible server: vLLM serving DeepSeek in
production, an endpoint row of the routing policy, or the embedded default's llama.cpp
server (a supervised child process, inference/llama_server.py). One client per server
configuration, kept so its connection pool is reused across questions.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.utils.translation import gettext

from inference.llama_server import (
    LlamaServerSupervisor,
    SupervisedChatModel,
    default_model_alias,
)
from inference.llm import ChatModel, OpenAICompatibleLLM
from ingest.embedding import model_fingerprint

_clients: dict[tuple[str, str, str, float, int], OpenAICompatibleLLM] = {}
_clients_lock = threading.Lock()


def chat_client(base_url: str, model: str, api_key: str) -> OpenAICompatibleLLM:
    """The client for one server, model and key (the timeouts and length from settings);
    a changed URL, model or key gets a new one."""
    key = (base_url, model, api_key, settings.LLM_TIMEOUT_SECONDS, settings.LLM_MAX_TOKENS)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            if len(_clients) > 32:  # rows edited over and over: do not keep every old one
                _clients.clear()
            client = _clients[key] = OpenAICompatibleLLM(
                base_url,
                model,
                api_key=api_key,
                timeout=settings.LLM_TIMEOUT_SECONDS,
                max_tokens=settings.LLM_MAX_TOKENS,
            )
        return client


_local_server: LlamaServerSupervisor | None = None
_local_server_lock = threading.Lock()


def local_model_server(start: bool = True) -> LlamaServerSupervisor | None:
    """The process's one llama.cpp server for LLM_GGUF_PATH, a supervised child process
    started on first use (`manage.py serve` starts it before the first question). None when
    no local GGUF is configured, or when it is not running and `start` is False (probes
    report on it without starting a model)."""
    global _local_server
    gguf_setting = settings.LLM_GGUF_PATH
    if not gguf_setting or settings.LLM_BASE_URL:
        return None
    gguf = Path(gguf_setting)
    with _local_server_lock:
        if _local_server is not None and _local_server.gguf_path != gguf:
            _local_server.stop()  # the setting changed (tests do): serve the file named now
            _local_server = None
        if _local_server is None and start:
            _local_server = LlamaServerSupervisor(
                gguf,
                Path(settings.DATA_DIR) / "llama-server.log",
                context_tokens=settings.LLM_CONTEXT_TOKENS,
            ).start()
        return _local_server


def local_model_status() -> tuple[bool, str]:
    """Whether the local GGUF's server can answer, and a line saying so, for readiness
    probes: they report on it and never start it."""
    gguf = Path(str(settings.LLM_GGUF_PATH))
    if not gguf.is_file():
        return False, f"llama.cpp server: GGUF file {gguf.name} not found"
    server = local_model_server(start=False)
    if server is None:
        return True, f"llama.cpp server: {gguf.name} present, starts on first use"
    state = server.state()
    return (
        state.ready,
        f"llama.cpp server (supervised child process): {gguf.name} {state.summary()}",
    )


def stop_local_model_server() -> None:
    """Stop the local server (the end of `serve`, tests); a later question starts a new one."""
    global _local_server
    with _local_server_lock:
        server, _local_server = _local_server, None
    get_chat_model.cache_clear()  # it holds the stopped server
    if server is not None:
        server.stop()


@lru_cache(maxsize=1)
def get_chat_model() -> ChatModel | None:
    """The configured model: the server at LLM_BASE_URL, else the supervised llama.cpp server
    for LLM_GGUF_PATH (through the same client), else none."""
    if settings.LLM_BASE_URL:
        return chat_client(settings.LLM_BASE_URL, settings.LLM_MODEL, settings.LLM_API_KEY)
    server = local_model_server()
    if server is not None:
        alias = server.model_alias
        return SupervisedChatModel(server, lambda url: chat_client(url, alias, "not-needed"))
    return None


@lru_cache(maxsize=1)
def chat_model_version() -> str:
    """The version recorded with every answer: LLM_MODEL_VERSION as the operator declares it
    (vLLM serves a directory; its revision is known to whoever deployed it), or for a local
    GGUF a fingerprint of the file itself."""
    if settings.LLM_MODEL_VERSION:
        return str(settings.LLM_MODEL_VERSION)
    if not settings.LLM_BASE_URL and settings.LLM_GGUF_PATH:
        path = Path(settings.LLM_GGUF_PATH)
        return model_fingerprint(path) if path.is_file() else ""
    return ""


def describe_chat_model() -> dict[str, str]:
    """What answers questions, as admins see it on the models page; for the local server also
    its state ("ready", "restarting after it stopped (signal 11 (SIGSEGV))") and the last
    lines of its log. Looking does not start a model."""
    state, log_tail, model_id = "", "", ""
    if settings.LLM_BASE_URL:
        backend = gettext("OpenAI-compatible server (vLLM)")
        name, where = settings.LLM_MODEL, settings.LLM_BASE_URL
        model = get_chat_model()
        model_id = model.model_id if model else ""
    elif settings.LLM_GGUF_PATH:
        backend = gettext("llama.cpp server (supervised child process)")
        gguf = Path(settings.LLM_GGUF_PATH)
        name, model_id = gguf.name, default_model_alias(gguf)
        server = local_model_server(start=False)
        if server is None:
            where = state = gettext("not started yet (starts with the first question)")
        else:
            current = server.state()
            state, log_tail = current.summary(), server.log_tail()
            where = f"{current.base_url} ({state})"
    else:
        backend, name, where = gettext("none: answers are the most relevant passages"), "", ""
    return {
        "backend": backend,
        "name": name,
        "where": where,
        "state": state,
        "log_tail": log_tail,
        "model_id": model_id,
        "version": chat_model_version(),
    }
