"""Group parsed elements into retrieval-sized chunks that keep their page and section."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ingest.parsing import ParsedElement

# CJK characters carry a word's worth of meaning each and have no spaces between them,
# so each one counts as a token; elsewhere a token is a run of word characters.
_TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|\w+")
_SENTENCE_END = re.compile(r"(?<=[.!?。！？；;])\s*")


_CJK_PUNCTUATION = "。！？；，、"


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def _join(left: str, right: str) -> str:
    # Chinese and Japanese sentences follow each other without a space.
    if not left:
        return right
    return left + right if left[-1] in _CJK_PUNCTUATION else f"{left} {right}"


@dataclass(frozen=True)
class ChunkDraft:
    ordinal: int
    text: str
    page: int | None
    section: str


def _split_long(text: str, max_tokens: int) -> list[str]:
    """Split one oversized element at sentence ends, then hard-split any giant sentence."""
    pieces: list[str] = []
    current = ""
    for sentence in (s for s in _SENTENCE_END.split(text) if s.strip()):
        candidate = _join(current, sentence)
        if count_tokens(candidate) <= max_tokens:
            current = candidate
            continue
        if current:
            pieces.append(current)
        while count_tokens(sentence) > max_tokens:
            tokens = list(_TOKEN.finditer(sentence))
            cut = tokens[max_tokens].start()
            pieces.append(sentence[:cut].strip())
            sentence = sentence[cut:]
        current = sentence.strip()
    if current:
        pieces.append(current)
    return pieces


def _tail(text: str, overlap_tokens: int) -> str:
    if overlap_tokens <= 0:
        return ""
    tokens = list(_TOKEN.finditer(text))
    if len(tokens) <= overlap_tokens:
        return text
    return text[tokens[-overlap_tokens].start() :].strip()


def chunk_elements(
    elements: list[ParsedElement], max_tokens: int = 180, overlap_tokens: int = 30
) -> list[ChunkDraft]:
    """Pack consecutive elements of one page and section into chunks of at most max_tokens.

    A new page or section starts a new chunk so every citation points at one page and
    heading. Within a run, consecutive chunks share `overlap_tokens` of context.
    """
    if overlap_tokens >= max_tokens:
        raise ValueError("overlap_tokens must be smaller than max_tokens")
    drafts: list[ChunkDraft] = []
    buffer: list[str] = []
    buffer_page: int | None = None
    buffer_section = ""

    def flush() -> None:
        if buffer:
            drafts.append(
                ChunkDraft(len(drafts), "\n".join(buffer).strip(), buffer_page, buffer_section)
            )

    for element in elements:
        section = " > ".join(element.section)
        if buffer and (element.page != buffer_page or section != buffer_section):
            flush()
            buffer = []
        if not buffer:
            buffer_page, buffer_section = element.page, section
        for piece in _split_long(element.text, max_tokens):
            current = "\n".join(buffer)
            if buffer and count_tokens(current) + count_tokens(piece) > max_tokens:
                flush()
                carried = _tail(current, overlap_tokens)
                buffer = (
                    [carried]
                    if carried and count_tokens(carried) + count_tokens(piece) <= max_tokens
                    else []
                )
            buffer.append(piece)
    flush()
    return drafts
