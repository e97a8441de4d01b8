"""The one module that talks to a language model.

Two backends with one interface: an OpenAI-compatible HTTP server (vLLM serving DeepSeek in
production; llama.cpp's server in tests) and llama.cpp in-process for the embedded default.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from inference.answering import split_reasoning


class LLMUnavailable(Exception):
    """The model could not produce an answer (down, timed out, misconfigured)."""


@dataclass(frozen=True)
class Completion:
    answer: str
    reasoning: str
    model: str
    prompt_tokens: int
    completion_tokens: int


class ChatModel(Protocol):
    @property
    def model_id(self) -> str: ...

    def complete(self, messages: list[dict[str, str]]) -> Completion: ...


def _completion_from_message(
    content: str | None, reasoning: str | None, model: str, usage: Any
) -> Completion:
    answer, inline_reasoning = split_reasoning(content or "")
    return Completion(
        answer=answer,
        reasoning="\n".join(p for p in (reasoning or "", inline_reasoning) if p).strip(),
        model=model,
        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
    )


class OpenAICompatibleLLM:
    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "not-needed",
        timeout: float = 120.0,
        max_tokens: int = 512,
        max_retries: int = 2,
    ) -> None:
        self.base_url = base_url
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self.max_tokens = max_tokens
        self.max_retries = max_retries
        self._client: Any = None

    @property
    def model_id(self) -> str:
        return f"{self.model}@{self.base_url}"

    def _get_client(self) -> Any:
        if self._client is None:
            from openai import OpenAI

            self._client = OpenAI(
                base_url=self.base_url,
                api_key=self.api_key,
                timeout=self.timeout,
                max_retries=self.max_retries,
            )
        return self._client

    def complete(self, messages: list[dict[str, str]]) -> Completion:
        import openai

        try:
            response = self._get_client().chat.completions.create(
                model=self.model, messages=messages, max_tokens=self.max_tokens, temperature=0.1
            )
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise LLMUnavailable(f"language model server unreachable: {exc}") from exc
        except openai.APIStatusError as exc:
            raise LLMUnavailable(f"language model server answered {exc.status_code}") from exc
        message = response.choices[0].message
        # vLLM's deepseek_r1 reasoning parser puts the thought in `reasoning_content`.
        reasoning = getattr(message, "reasoning_content", None) or getattr(
            message, "reasoning", None
        )
        return _completion_from_message(
            message.content, reasoning, response.model or self.model, response.usage
        )


class LlamaCppLLM:
    def __init__(self, gguf_path: Path, context_tokens: int = 4096, max_tokens: int = 512) -> None:
        self.gguf_path = gguf_path
        self.context_tokens = context_tokens
        self.max_tokens = max_tokens
        self._llama: Any = None
        # llama.cpp contexts are not thread-safe; web threads take turns.
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return f"llama.cpp:{self.gguf_path.name}"

    def complete(self, messages: list[dict[str, str]]) -> Completion:
        with self._lock:
            if self._llama is None:
                try:
                    from llama_cpp import Llama
                except ImportError as exc:
                    raise LLMUnavailable(
                        "LLM_GGUF_PATH is set but llama-cpp-python is not installed "
                        "(pip install '.[llamacpp]')"
                    ) from exc
                if not self.gguf_path.is_file():
                    raise LLMUnavailable(f"GGUF model file not found: {self.gguf_path}")
                self._llama = Llama(
                    model_path=str(self.gguf_path), n_ctx=self.context_tokens, verbose=False
                )
            response = self._llama.create_chat_completion(
                messages=messages, max_tokens=self.max_tokens, temperature=0.1
            )
        message = response["choices"][0]["message"]
        usage = response.get("usage", {})
        return Completion(
            *split_reasoning(message.get("content") or ""),
            model=self.model_id,
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
        )
