"""Where sentences end, in the languages the documents are written in: used to chunk a
document (ingest/chunking.py) and to tokenize text for unstructured (ingest/parsing.py)."""

from __future__ import annotations

import re

CLOSERS = re.escape("\"'”’」』）)】]")
# Where a sentence ends: CJK and exclamation/question marks end one outright; a full stop ends
# one only before whitespace, so 3.5, e.g. and URLs stay whole. Line breaks end one too.
_SENTENCE_END = re.compile(f"[。！？!?]+[{CLOSERS}]*|\\.+[{CLOSERS}]*(?=\\s|$)|\\n+")
# A full stop after these does not end a sentence ("Dr. Li", "e.g. invoices").
_ABBREVIATIONS = frozenset(
    {"e.g", "i.e", "etc", "vs", "dr", "mr", "mrs", "ms", "prof", "inc", "ltd", "co", "no"}
    | {"nr", "fig", "approx", "dept", "art", "sec", "p", "pp"}
)


def split_after(pattern: re.Pattern[str], text: str) -> list[str]:
    """`text` cut after every match of `pattern`, the matches kept, blanks dropped."""
    pieces, start = [], 0
    for match in pattern.finditer(text):
        pieces.append(text[start : match.end()].strip())
        start = match.end()
    pieces.append(text[start:].strip())
    return [piece for piece in pieces if piece]


def split_sentences(text: str) -> list[str]:
    pieces = split_after(_SENTENCE_END, text)
    sentences: list[str] = []
    for piece in pieces:
        previous = sentences[-1] if sentences else ""
        last_word = previous.rsplit(None, 1)[-1].rstrip(".").lower() if previous else ""
        # "Dr. Li" and "e.g. invoices" are one sentence; so is "J. Smith" (an initial).
        if previous.endswith(".") and (
            last_word in _ABBREVIATIONS or (len(last_word) == 1 and last_word.isalpha())
        ):
            sentences[-1] = f"{previous} {piece}"
        else:
            sentences.append(piece)
    return sentences
