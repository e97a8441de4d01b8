from __future__ import annotations

import itertools

from ingest.chunking import chunk_elements, count_tokens, embedding_text
from ingest.embedding import SentenceTransformersEmbedder
from ingest.parsing import ParsedElement
from ingest.sentences import split_sentences


def element(text: str, page: int | None = 1, section: tuple[str, ...] = ("S",)) -> ParsedElement:
    return ParsedElement(text=text, category="NarrativeText", page=page, section=section)


def test_chunks_stay_within_the_token_bound_and_overlap_by_whole_sentences() -> None:
    sentences = [f"Sentence number {i} talks about topic {i}." for i in range(60)]
    chunks = chunk_elements([element(" ".join(sentences))], max_tokens=50, overlap_tokens=10)
    assert len(chunks) > 3
    assert all(count_tokens(c.text) <= 50 for c in chunks)
    for previous, current in itertools.pairwise(chunks):
        first_sentence = split_sentences(current.text)[0]
        assert previous.text.endswith(first_sentence)  # shared context, never a fragment
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))


def test_a_new_page_or_section_starts_a_new_chunk_and_keeps_its_path() -> None:
    chunks = chunk_elements(
        [
            element("On page one.", page=1),
            element("Still page one.", page=1),
            element("Page two.", page=2),
            element("Other section.", page=2, section=("S", "T")),
        ]
    )
    assert [(c.page, c.section) for c in chunks] == [(1, "S"), (2, "S"), (2, "S > T")]
    assert chunks[-1].section_title == "T"
    assert chunks[0].text == "On page one.\nStill page one."


def test_sentences_split_in_english_chinese_and_japanese() -> None:
    assert split_sentences("The limit is 3.5 EUR. Dr. Li approves, e.g. invoices. Done!") == [
        "The limit is 3.5 EUR.",
        "Dr. Li approves, e.g. invoices.",
        "Done!",
    ]
    assert split_sentences("报销需要在三十天内提交。酒店标准为每晚六百元！是吗？") == [
        "报销需要在三十天内提交。",
        "酒店标准为每晚六百元！",
        "是吗？",
    ]
    assert split_sentences("出張後三十日以内に精算してください。「了解。」") == [
        "出張後三十日以内に精算してください。",
        "「了解。」",
    ]


def test_chinese_is_chunked_on_sentence_boundaries() -> None:
    text = "".join(f"第{i}条规定报销需要在出差结束后三十天内提交。" for i in range(40))
    assert count_tokens("报销需要") == 4
    chunks = chunk_elements([element(text)], max_tokens=60, overlap_tokens=0)
    assert len(chunks) > 5
    assert all(c.text.endswith("。") and c.text.startswith("第") for c in chunks)
    assert "".join(c.text for c in chunks) == text  # joined without spaces, nothing lost


def test_an_overlong_sentence_is_cut_at_clauses_then_tokens() -> None:
    clauses = "，".join(f"第{i}项费用由部门承担" for i in range(30)) + "。"
    chunks = chunk_elements([element(clauses)], max_tokens=40, overlap_tokens=0)
    assert all(count_tokens(c.text) <= 40 for c in chunks)
    assert all(c.text.endswith(("，", "。")) for c in chunks)
    giant = chunk_elements([element("word " * 500)], max_tokens=100, overlap_tokens=0)
    assert all(count_tokens(c.text) <= 100 for c in giant)
    assert sum(count_tokens(c.text) for c in giant) == 500


def test_tables_keep_whole_rows_and_repeat_the_header() -> None:
    header = ("City", "Hotel limit", "Per diem")
    rows = (header, *((f"City {i}", f"{100 + i} EUR", f"{40 + i} EUR") for i in range(40)))
    table = ParsedElement("", "Table", 3, ("Rates",), rows)
    chunks = chunk_elements(
        [element("Intro.", page=3, section=("Rates",)), table], max_tokens=60, overlap_tokens=10
    )
    assert chunks[0].kind == "text" and chunks[0].text == "Intro."
    table_chunks = chunks[1:]
    assert len(table_chunks) > 2 and all(c.kind == "table" for c in table_chunks)
    body_rows = []
    for chunk in table_chunks:
        lines = chunk.text.split("\n")
        assert lines[0] == "City | Hotel limit | Per diem"
        assert all(line.count(" | ") == 2 for line in lines)  # never half a row
        assert (chunk.page, chunk.section) == (3, "Rates")
        body_rows.extend(lines[1:])
    assert body_rows == [" | ".join(r) for r in rows[1:]]  # each row exactly once


def test_the_embedding_models_tokenizer_bounds_chunks() -> None:
    embedder = SentenceTransformersEmbedder()
    text = " ".join(f"Reimbursement-eligible expenditure category {i} applies." for i in range(80))
    chunks = chunk_elements(
        [element(text)], max_tokens=64, overlap_tokens=8, counter=embedder.count_tokens
    )
    assert all(embedder.count_tokens(c.text) <= 64 for c in chunks)
    # Word pieces outnumber words here, so the regex estimate alone would have overflowed.
    assert max(embedder.count_tokens(c.text) for c in chunks) > max(
        count_tokens(c.text) for c in chunks
    )
    assert embedder.max_tokens == 254


def test_embedding_text_carries_title_and_section() -> None:
    assert (
        embedding_text("Travel policy", "Hotels", "180 EUR.") == "Travel policy > Hotels\n180 EUR."
    )
    assert embedding_text("Travel policy", "Travel policy > Hotels", "x") == (
        "Travel policy > Hotels\nx"
    )
    assert embedding_text("", "", "x") == "x"


def test_a_heading_followed_by_a_subheading_is_not_a_chunk_of_its_own() -> None:
    def heading(text: str, *path: str) -> ParsedElement:
        return ParsedElement(text, "Title", None, path)

    chunks = chunk_elements(
        [
            heading("Handbook", "Handbook"),
            heading("Hotels", "Handbook", "Hotels"),
            element("The limit is 180 EUR.", None, ("Handbook", "Hotels")),
        ]
    )
    assert [(c.text, c.section) for c in chunks] == [
        ("Hotels\nThe limit is 180 EUR.", "Handbook > Hotels")
    ]
