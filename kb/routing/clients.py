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

from inference.llm import ChatModel, LlamaCppLLM, OpenAICompatibleLLM
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


@lru_cache(maxsize=1)
def get_chat_model() -> ChatModel | None:
    """The configured model: a server if LLM_BASE_URL is set, else a local GGUF, else none."""
    if settings.LLM_BASE_URL:
        return chat_client(settings.LLM_BASE_URL, settings.LLM_MODEL, settings.LLM_API_KEY)
    if settings.LLM_GGUF_PATH:
        return LlamaCppLLM(
            Path(settings.LLM_GGUF_PATH),
            context_tokens=settings.LLM_CONTEXT_TOKENS,
            max_tokens=settings.LLM_MAX_TOKENS,
        )
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
    """What answers questions, as admins see it on the models page."""
    if settings.LLM_BASE_URL:
        backend = gettext("OpenAI-compatible server (vLLM)")
        name, where = settings.LLM_MODEL, settings.LLM_BASE_URL
    elif settings.LLM_GGUF_PATH:
        backend = gettext("llama.cpp in-process")
        name, where = Path(settings.LLM_GGUF_PATH).name, ""
    else:
        backend, name, where = gettext("none: answers are the most relevant passages"), "", ""
    model = get_chat_model()
    return {
        "backend": backend,
        "name": name,
        "where": where,
        "model_id": model.model_id if model else "",
        "version": chat_model_version(),
    }
