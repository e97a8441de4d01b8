"""The one module that talks to a language model.

Every model is an OpenAI-compatible HTTP server: vLLM serving DeepSeek in production, an
endpoint of the routing policy, or llama.cpp's server for a local GGUF file, which the
embedded default runs as a supervised child process (inference/llama_server.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from inference.answering import ReasoningStream, split_reasoning


class LLMUnavailable(Exception):
    """The model could not produce an answer (down, timed out, misconfigured)."""


class ModelRestarting(LLMUnavailable):
    """The local model's server is starting or restarting (inference/llama_server.py): it is
    expected back on its own, so the asker can be told to try again shortly."""


@dataclass(frozen=True)
class Completion:
    """A whole reply. Token counts are 0 where the server did not report them."""

    answer: str
    reasoning: str
    model: str
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Delta:
    """A piece of a streamed reply: `kind` is "answer" or "reasoning" (never shown as answer)."""

    kind: str
    text: str


class ChatModel(Protocol):
    @property
    def model_id(self) -> str: ...

    def complete(self, messages: list[dict[str, str]]) -> Completion: ...

    def stream(self, messages: list[dict[str, str]]) -> Iterator[Delta | Completion]:
        """Deltas as the model writes them, then one Completion (the whole reply, split).

        Raises LLMUnavailable before or during the stream (down, timed out, cut off)."""
        ...


_R1_NAME = re.compile(r"deepseek[-_ ]?r1|r1[-_ ]distill|\breasoner\b|\bqwq\b", re.IGNORECASE)


def thinks_before_answering(model: str) -> bool:
    """DeepSeek-R1 and its distills open `<think>` in the prompt template, so a server run
    without a reasoning parser streams the thought first with no opening tag."""
    return bool(_R1_NAME.search(model))


def _split_stream(
    pieces: Iterable[tuple[str, str]],
    starts_in_reasoning: bool,
    finish: Callable[[str, str], Completion],
) -> Iterator[Delta | Completion]:
    """Turn (kind, text) pieces from a backend into Deltas, then the Completion that
    `finish(answer, reasoning)` builds once the pieces are exhausted (token counts are only
    known then). The whole reply is split again from the full text, so nothing streamed
    early stays in the answer."""
    splitter = ReasoningStream(starts_in_reasoning)
    content: list[str] = []
    reasoning: list[str] = []
    for kind, text in pieces:
        if kind == "reasoning":  # a server-side reasoning parser already separated it
            reasoning.append(text)
            yield Delta("reasoning", text)
            continue
        content.append(text)
        for piece_kind, piece in splitter.feed(text):
            yield Delta(piece_kind, piece)
    for piece_kind, piece in splitter.finish():
        yield Delta(piece_kind, piece)
    full = ("<think>" if starts_in_reasoning else "") + "".join(content)
    answer, inline_reasoning = split_reasoning(full)
    yield finish(answer, "\n".join(p for p in ("".join(reasoning), inline_reasoning) if p).strip())


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
        starts_in_reasoning: bool | None = None,
    ) -> None:
        self.base_url = base_url
        self.model = model
        self.starts_in_reasoning = (
            thinks_before_answering(model) if starts_in_reasoning is None else starts_in_reasoning
        )
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

    def stream(self, messages: list[dict[str, str]]) -> Iterator[Delta | Completion]:
        import httpx
        import openai

        usage: Any = None
        served_model = self.model
        completion_pieces = 0

        def pieces() -> Iterator[tuple[str, str]]:
            nonlocal usage, served_model, completion_pieces
            response = self._get_client().chat.completions.create(
                model=self.model,
                messages=messages,
                max_tokens=self.max_tokens,
                temperature=0.1,
                stream=True,
                # vLLM reports token usage in a last chunk; servers that don't, ignore it.
                stream_options={"include_usage": True},
            )
            for chunk in response:
                usage = getattr(chunk, "usage", None) or usage
                served_model = chunk.model or served_model
                if not chunk.choices:
                    continue
                delta = chunk.choices[0].delta
                # vLLM's deepseek_r1 reasoning parser streams the thought separately.
                thought = getattr(delta, "reasoning_content", None) or getattr(
                    delta, "reasoning", None
                )
                if thought:
                    yield "reasoning", thought
                if delta.content:
                    completion_pieces += 1
                    yield "answer", delta.content

        def finish(answer: str, reasoning: str) -> Completion:
            return Completion(
                answer=answer,
                reasoning=reasoning,
                model=served_model,
                prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                # Without a usage report, each streamed piece is one generated token.
                completion_tokens=int(getattr(usage, "completion_tokens", 0) or completion_pieces),
            )

        try:
            yield from _split_stream(pieces(), self.starts_in_reasoning, finish)
        except (openai.APIConnectionError, openai.APITimeoutError, httpx.HTTPError) as exc:
            raise LLMUnavailable(f"language model server unreachable or cut off: {exc}") from exc
        except openai.APIStatusError as exc:
            raise LLMUnavailable(f"language model server answered {exc.status_code}") from exc
