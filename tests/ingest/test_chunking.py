from __future__ import annotations

import itertools

from ingest.chunking import chunk_elements, count_tokens
from ingest.parsing import ParsedElement


def element(text: str, page: int | None = 1, section: tuple[str, ...] = ("S",)) -> ParsedElement:
    return ParsedElement(text=text, category="NarrativeText", page=page, section=section)


def test_chunks_stay_within_the_token_bound_and_overlap() -> None:
    sentences = [f"Sentence number {i} talks about topic {i}." for i in range(60)]
    chunks = chunk_elements([element(" ".join(sentences))], max_tokens=50, overlap_tokens=10)
    assert len(chunks) > 3
    assert all(count_tokens(c.text) <= 50 for c in chunks)
    # Consecutive chunks share context: the start of each chunk repeats the previous tail.
    for previous, current in itertools.pairwise(chunks):
        assert current.text.split()[0] in previous.text
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))


def test_a_new_page_or_section_starts_a_new_chunk() -> None:
    chunks = chunk_elements(
        [
            element("On page one.", page=1),
            element("Still page one.", page=1),
            element("Page two.", page=2),
            element("Other section.", page=2, section=("S", "T")),
        ]
    )
    assert [(c.page, c.section) for c in chunks] == [(1, "S"), (2, "S"), (2, "S > T")]
    assert chunks[0].text == "On page one.\nStill page one."


def test_chinese_is_counted_per_character_and_split_at_sentence_ends() -> None:
    text = "报销需要在出差结束后三十天内提交。" * 20
    assert count_tokens("报销需要") == 4
    chunks = chunk_elements([element(text)], max_tokens=60, overlap_tokens=0)
    assert len(chunks) > 1
    assert all(c.text.endswith("。") for c in chunks)
    assert "".join(c.text.replace("\n", "") for c in chunks) == text


def test_a_giant_sentence_is_hard_split() -> None:
    chunks = chunk_elements([element("word " * 500)], max_tokens=100, overlap_tokens=0)
    assert all(count_tokens(c.text) <= 100 for c in chunks)
    assert sum(count_tokens(c.text) for c in chunks) == 500
