"""Group parsed elements into retrieval-sized chunks that keep their structure.

- A chunk never spans two pages or two sections, so a citation names one page and heading;
  every chunk carries its section title and the path of headings above it.
- Text is cut at sentence ends (English, Chinese and Japanese punctuation), and consecutive
  chunks of one section share whole sentences of overlap.
- Tables are packed whole rows at a time with their header row repeated in every chunk, so a
  row is never split and every chunk of a table can be read on its own.
- Sizes are counted with a pluggable token counter: the pipeline passes the embedding model's
  own tokenizer, so a chunk is never silently truncated by the model.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ingest.parsing import ParsedElement
from ingest.sentences import CLOSERS, split_after, split_sentences

TokenCounter = Callable[[str], int]

_CJK_CHARS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# Outside CJK a token is a run of word characters; each CJK character is one token.
_TOKEN = re.compile(f"[{_CJK_CHARS}]|[^\\W{_CJK_CHARS}]+")
# Inside an overlong sentence: clause punctuation, as a second-best place to cut.
_CLAUSE_END = re.compile(f"[，、；;,:：]+[{CLOSERS}]*")
_CJK_END = re.compile(f"[{_CJK_CHARS}。！？，、；：」』）]$")


def count_tokens(text: str) -> int:
    """A tokenizer-free estimate: words, plus one per CJK character."""
    return len(_TOKEN.findall(text))


def join_text(left: str, right: str) -> str:
    """Chinese and Japanese sentences follow each other without a space."""
    if not left:
        return right
    if not right:
        return left
    return left + right if _CJK_END.search(left) else f"{left} {right}"


def _hard_split(text: str, max_tokens: int, counter: TokenCounter) -> list[str]:
    """Cut `text` at token boundaries into pieces of at most `max_tokens`."""
    pieces: list[str] = []
    while text and counter(text) > max_tokens:
        boundaries = [m.end() for m in _TOKEN.finditer(text)]
        low, high = 0, len(boundaries) - 1
        while low < high:  # the longest prefix that fits, by binary search
            middle = (low + high + 1) // 2
            if counter(text[: boundaries[middle]]) <= max_tokens:
                low = middle
            else:
                high = middle - 1
        cut = boundaries[low] if low > 0 or counter(text[: boundaries[0]]) <= max_tokens else 0
        if cut <= 0:  # a single "token" longer than the budget (a giant URL): cut characters
            cut = max(1, len(text) // 2)
        pieces.append(text[:cut].strip())
        text = text[cut:].strip()
    if text:
        pieces.append(text)
    return pieces


def _fit_sentence(sentence: str, max_tokens: int, counter: TokenCounter) -> list[tuple[str, int]]:
    """The sentence as (text, tokens) units within budget: whole, by clauses, or cut."""
    tokens = counter(sentence)
    if tokens <= max_tokens:
        return [(sentence, tokens)]
    units: list[tuple[str, int]] = []
    current, current_tokens = "", 0
    for clause in split_after(_CLAUSE_END, sentence):
        clause_tokens = counter(clause)
        if clause_tokens > max_tokens:
            if current:
                units.append((current, current_tokens))
                current, current_tokens = "", 0
            units.extend(
                (piece, counter(piece)) for piece in _hard_split(clause, max_tokens, counter)
            )
            continue
        if current and current_tokens + clause_tokens > max_tokens:
            units.append((current, current_tokens))
            current, current_tokens = "", 0
        current = join_text(current, clause)
        current_tokens += clause_tokens
    if current:
        units.append((current, current_tokens))
    return units


@dataclass(frozen=True)
class ChunkDraft:
    ordinal: int
    text: str
    page: int | None
    section_path: tuple[str, ...]
    kind: str  # "text" or "table"
    tokens: int

    @property
    def section_title(self) -> str:
        return self.section_path[-1] if self.section_path else ""

    @property
    def section(self) -> str:
        return " > ".join(self.section_path)


def _render_row(cells: tuple[str, ...]) -> str:
    return " | ".join(cells)


class _Packer:
    """Accumulates units (sentences, paragraphs) into chunks of one page and section."""

    def __init__(self, max_tokens: int, overlap_tokens: int) -> None:
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens
        self.drafts: list[ChunkDraft] = []
        # Each unit: (text, tokens, paragraph number); paragraphs join with a newline.
        self.units: list[tuple[str, int, int]] = []
        self.tokens = 0
        # Whether the buffer holds anything but headings.
        self.has_body = False
        self.page: int | None = None
        self.section: tuple[str, ...] = ()

    def _emit(self, text: str, tokens: int, kind: str) -> None:
        self.drafts.append(
            ChunkDraft(len(self.drafts), text, self.page, self.section, kind, tokens)
        )

    def _text(self) -> str:
        lines: list[str] = []
        last_paragraph = None
        for text, _, paragraph in self.units:
            if paragraph == last_paragraph:
                lines[-1] = join_text(lines[-1], text)
            else:
                lines.append(text)
            last_paragraph = paragraph
        return "\n".join(lines)

    def flush(self, keep_overlap: bool = False) -> None:
        if not self.units:
            return
        self._emit(self._text(), self.tokens, "text")
        carried: list[tuple[str, int, int]] = []
        if keep_overlap:
            budget = self.overlap_tokens
            for unit in reversed(self.units):
                if unit[1] > budget:
                    break
                carried.insert(0, unit)
                budget -= unit[1]
        self.units = carried
        self.tokens = sum(unit[1] for unit in carried)
        self.has_body = False

    def start(self, page: int | None, section: tuple[str, ...]) -> None:
        if (page, section) != (self.page, self.section):
            # A heading straight followed by a sub-heading is no passage of its own: the
            # text lives on in the section path of every chunk below it.
            if self.has_body or len(section) <= len(self.section):
                self.flush()
            self.units, self.tokens, self.has_body = [], 0, False
            self.page, self.section = page, section

    def add(self, text: str, tokens: int, paragraph: int, heading: bool = False) -> None:
        if self.units and self.tokens + tokens > self.max_tokens:
            self.flush(keep_overlap=True)
            # The overlap must leave room for the new unit.
            while self.units and self.tokens + tokens > self.max_tokens:
                self.tokens -= self.units.pop(0)[1]
        self.units.append((text, tokens, paragraph))
        self.tokens += tokens
        self.has_body = self.has_body or not heading

    def add_table(self, rows: tuple[tuple[str, ...], ...], counter: TokenCounter) -> None:
        self.flush()
        self.units, self.tokens = [], 0
        header, body = _render_row(rows[0]), [_render_row(r) for r in rows[1:]]
        header_tokens = counter(header)
        if not body:
            self._emit(header, header_tokens, "table")
            return
        lines, tokens = [header], header_tokens
        for row in body:
            row_tokens = counter(row)
            if len(lines) > 1 and tokens + row_tokens > self.max_tokens:
                self._emit("\n".join(lines), tokens, "table")
                lines, tokens = [header], header_tokens
            # A row longer than the budget stays whole: splitting it would separate a value
            # from its key. The embedder sees its beginning; the reader sees all of it.
            lines.append(row)
            tokens += row_tokens
        self._emit("\n".join(lines), tokens, "table")


def chunk_elements(
    elements: list[ParsedElement],
    max_tokens: int = 200,
    overlap_tokens: int = 30,
    counter: TokenCounter = count_tokens,
) -> list[ChunkDraft]:
    """Chunks of at most `max_tokens` (a single table row may exceed it), in reading order."""
    if overlap_tokens >= max_tokens:
        raise ValueError("overlap_tokens must be smaller than max_tokens")
    packer = _Packer(max_tokens, overlap_tokens)
    for paragraph, element in enumerate(elements):
        packer.start(element.page, element.section)
        if element.is_table:
            packer.add_table(element.rows, counter)
            continue
        heading = element.category == "Title"
        for sentence in split_sentences(element.text):
            for text, tokens in _fit_sentence(sentence, max_tokens, counter):
                packer.add(text, tokens, paragraph, heading)
    packer.flush()
    return packer.drafts


def embedding_text(title: str, section_path: str, text: str) -> str:
    """A chunk as the embedding model sees it: prefixed with where it stands in the document.

    A passage such as "The limit is 180 EUR." is only findable for "hotel limit in Munich" if
    the model also sees "Travel policy > Hotels > Munich". The stored chunk text stays as is.
    """
    if section_path and title and not section_path.startswith(title):
        context = f"{title} > {section_path}"
    else:
        context = section_path or title
    return f"{context}\n{text}" if context else text
