"""The lexical encoder: tokens for English, Chinese and Japanese, stable indices, BM25 weights."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest

from ingest.index import SparseVector
from ingest.lexical import (
    BM25_AVG_LENGTH,
    BM25_K1,
    document_vector,
    query_vector,
    stem,
    token_index,
    tokenize,
)


def match(question: str, passage: str) -> float:
    """What Qdrant computes, IDF aside: the passage's weights at the question's tokens."""
    vector = document_vector(passage)
    weights = dict(zip(vector.indices, vector.values, strict=True))
    return sum(weights.get(i, 0.0) for i in query_vector(question).indices)


def test_a_chinese_question_matches_chinese_text_segmented_differently() -> None:
    passage = "差旅费报销需要部门经理审批，住宿标准为每晚180欧元。"
    assert match("报销差旅费要谁审批？", passage) > match("报销差旅费要谁审批？", "今天天气很好。")
    # The words come in another order and with other characters around them: the shared
    # bigrams (差旅, 旅费, 报销, 审批) still match.
    shared = set(tokenize("报销差旅费要谁审批")) & set(tokenize(passage))
    assert {"差旅", "旅费", "报销", "审批"} <= shared


def test_a_one_character_question_still_matches() -> None:
    assert match("税", "增值税发票必须在三十天内提交。") > 0
    assert match("税", "差旅费报销需要部门经理审批。") == 0


def test_japanese_kana_and_kanji_match() -> None:
    passage = "経費精算はシステムで申請してください。"
    assert match("経費精算の申請", passage) > 0
    assert match("システム", passage) > 0


def test_english_morphology_meets_in_one_stem() -> None:
    assert match("Who approves large invoices?", "Invoices above 50,000 EUR are approved.") > 0
    for words in (
        ("approve", "approves", "approved", "approving"),
        ("invoice", "invoices", "invoiced"),
        ("policy", "policies"),
        ("rotation", "rotate", "rotates", "rotated"),
    ):
        assert len({stem(w) for w in words}) == 1, words


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("caresses", "caress"),
        ("ponies", "poni"),
        ("agreed", "agre"),
        ("hopping", "hop"),
        ("falling", "fall"),
        ("filing", "file"),
        ("happy", "happi"),
        ("relational", "relat"),
        ("generalization", "gener"),
        ("hopefulness", "hope"),
        ("adjustment", "adjust"),
        ("adoption", "adopt"),
        ("controll", "control"),
    ],
)
def test_the_stemmer_is_porters(word: str, expected: str) -> None:
    assert stem(word) == expected


def test_full_width_forms_case_and_vowel_signs_are_folded() -> None:
    assert query_vector("ＸＫ－４４７１Ｂ") == query_vector("xk-4471b") == query_vector("XK 4471B")
    assert match("XK-4471B", "Warranty for model xk-4471b: two years.") > 0
    assert query_vector("مُحَمَّد") == query_vector("محمد")  # Arabic vowel signs
    assert query_vector("ｶﾞｽ") == query_vector("ガス") != query_vector("カス")  # kana keep marks


def test_nothing_to_match_gives_an_empty_vector() -> None:
    for text in ("", "   ", "the of and", "Is it what it is?", "。，！？……", "--- ***"):
        assert document_vector(text).is_empty, text
        assert query_vector(text).is_empty, text


def test_vectors_are_valid_for_qdrant() -> None:
    text = (
        "Mixed 混合 テキスト with ñandú, العربية, emoji 🚀, numbers 3.14 and 50,000, "
        "repeated repeated repeated words, 报销报销报销, and a " + "x" * 500 + " long token"
    )
    for vector in (document_vector(text), query_vector(text)):
        assert len(vector.indices) == len(vector.values) > 0
        assert list(vector.indices) == sorted(set(vector.indices))
        assert all(0 <= i < 2**32 for i in vector.indices)
        assert all(math.isfinite(v) and v > 0 for v in vector.values)
    assert set(query_vector(text).values) == {1.0}


def test_bm25_weights_saturate_and_favour_short_passages() -> None:
    def weight(text: str) -> float:
        vector = document_vector(text)
        return dict(zip(vector.indices, vector.values, strict=True))[token_index("audit")]

    filler = " ".join(f"word{i}" for i in range(int(BM25_AVG_LENGTH) - 1))
    once = weight(f"audit {filler}")
    assert once == pytest.approx(1.0, abs=0.01)  # an average-length passage, tf=1
    twice = weight(f"audit audit {filler}")
    assert once < twice < 2 * once
    assert weight("audit") > once  # a short passage
    assert weight(" ".join(["audit"] * 1000)) < BM25_K1 + 1


def test_token_indices_are_stable_across_processes() -> None:
    # Pinned: a change here changes every stored vector (bump INDEX_SCHEMA_VERSION).
    assert token_index("invoic") == 3617303967
    assert token_index("报销") == 2082971544
    code = "from ingest.lexical import query_vector; print(query_vector('报销 invoices XK-4471B'))"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    assert outputs == {f"{query_vector('报销 invoices XK-4471B')}\n"}


@pytest.mark.parametrize(
    ("indices", "values"),
    [
        ((1, 2), (1.0,)),  # lengths differ: Qdrant Edge would panic and keep panicking
        ((2, 1), (1.0, 1.0)),  # unsorted
        ((1, 1), (1.0, 1.0)),  # duplicate
        ((-1,), (1.0,)),
        ((2**32,), (1.0,)),
        ((1,), (math.nan,)),
        ((1,), (math.inf,)),
    ],
)
def test_malformed_sparse_vectors_are_refused(
    indices: tuple[int, ...], values: tuple[float, ...]
) -> None:
    with pytest.raises(ValueError, match="sparse vector"):
        SparseVector(indices, values)
