"""Lexical (BM25-style) sparse vectors for hybrid retrieval, for English, Chinese and Japanese.

Dense embeddings miss what a reader matches by eye: product codes, names, numbers, and
Chinese terms a small English-trained model barely represents. Each chunk therefore also gets
a sparse vector of its tokens, and the question gets one too; Qdrant scores them with its IDF
modifier, so IDF is computed at query time over the points the caller may read.

Tokens: NFKC and lower case; Latin (and other space-delimited) words and numbers, English
words Porter-stemmed, English stopwords dropped; runs of Chinese characters,
kana and hangul become overlapping character bigrams plus the single characters, because
Chinese has no spaces and any segmenter disagrees with the next one: "差旅费报销" and
"报销差旅费" share the bigrams 差旅, 旅费 and 报销, and a one-character question still
finds its character.

Each token maps to a stable 32-bit index (a BLAKE2b digest, never Python's salted `hash()`),
so every process and every release computes the same vector for the same text.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from functools import lru_cache

from ingest.index.base import SparseVector

# BM25 term-frequency saturation (Robertson & Zaragoza): the classic defaults.
BM25_K1 = 1.2
BM25_B = 0.75
# The length a typical chunk has, in lexical units (a word, or one CJK character). Qdrant
# stores a fixed vector per point and does not know the corpus's mean length at write time,
# so the length norm uses this constant instead: chunks are cut at CHUNK_MAX_TOKENS (200) model
# tokens, about 150 English words of which some 90 survive the stopword list, or about 200
# Chinese characters, so 100 puts an ordinary full chunk near 1.0 and lets short ones (a
# title, a last paragraph) weigh a little more. Changing it changes every stored vector:
# bump INDEX_SCHEMA_VERSION (ingest/index/base.py) so the index is rebuilt.
BM25_AVG_LENGTH = 100.0

_CJK_CHARS = (
    "\u3040-\u30ff"  # hiragana, katakana
    "\u31f0-\u31ff"  # katakana phonetic extensions
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uac00-\ud7af"  # hangul syllables
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\U00020000-\U0003134f"  # CJK extensions B-G
)
_CJK_RUN = re.compile(f"([{_CJK_CHARS}]+)")
# Letters and digits of any other script; `_` and punctuation separate words.
_WORD = re.compile(r"[^\W_]+")
# Single characters too common to say anything on their own (their bigrams still count).
_CJK_STOP_CHARS = frozenset("的了着过吗呢吧啊之其与及或而和也是在")
_MAX_WORD_CHARS = 64  # longer "words" are base64, hashes or garbage: no query will repeat them

_ENGLISH_STOPWORD_TEXT = """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its
    itself just me more most my myself no nor not of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
"""
_ENGLISH_STOPWORDS = frozenset(_ENGLISH_STOPWORD_TEXT.split())
# --- the Porter stemmer (M. F. Porter, "An algorithm for suffix stripping", 1980) -----------
# Written out here because it is short, fixed and dependency-free. It only has to be
# consistent: "approve", "approves", "approved", "approving" and "approval" all become
# "approv"; "policy" and "policies" both "polici".

_STEP2 = (
    ("ational", "ate"),
    ("tional", "tion"),
    ("enci", "ence"),
    ("anci", "ance"),
    ("izer", "ize"),
    ("bli", "ble"),
    ("alli", "al"),
    ("entli", "ent"),
    ("eli", "e"),
    ("ousli", "ous"),
    ("ization", "ize"),
    ("ation", "ate"),
    ("ator", "ate"),
    ("alism", "al"),
    ("iveness", "ive"),
    ("fulness", "ful"),
    ("ousness", "ous"),
    ("aliti", "al"),
    ("iviti", "ive"),
    ("biliti", "ble"),
    ("logi", "log"),
)
_STEP3 = (
    ("icate", "ic"),
    ("ative", ""),
    ("alize", "al"),
    ("iciti", "ic"),
    ("ical", "ic"),
    ("ful", ""),
    ("ness", ""),
)
_STEP4 = (
    "al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent", "ion",
    "ou", "ism", "ate", "iti", "ous", "ive", "ize",
)  # fmt: skip
# Longest suffix first: the rule that applies is the longest one that matches.
_STEP2_BY_LENGTH = sorted(_STEP2, key=lambda rule: -len(rule[0]))
_STEP3_BY_LENGTH = sorted(_STEP3, key=lambda rule: -len(rule[0]))
_STEP4_BY_LENGTH = sorted(_STEP4, key=lambda suffix: -len(suffix))


def _consonant(word: str, i: int) -> bool:
    letter = word[i]
    if letter in "aeiou":
        return False
    if letter == "y":
        return i == 0 or not _consonant(word, i - 1)
    return True


def _measure(stem: str) -> int:
    """m in [C](VC)^m[V]: how many vowel-consonant sequences the stem has."""
    count, i, length = 0, 0, len(stem)
    while i < length and _consonant(stem, i):
        i += 1
    while i < length:
        while i < length and not _consonant(stem, i):
            i += 1
        if i >= length:
            break
        while i < length and _consonant(stem, i):
            i += 1
        count += 1
    return count


def _has_vowel(stem: str) -> bool:
    return any(not _consonant(stem, i) for i in range(len(stem)))


def _double_consonant(stem: str) -> bool:
    return len(stem) >= 2 and stem[-1] == stem[-2] and _consonant(stem, len(stem) - 1)


def _cvc(stem: str) -> bool:
    n = len(stem)
    return (
        n >= 3
        and _consonant(stem, n - 3)
        and not _consonant(stem, n - 2)
        and _consonant(stem, n - 1)
        and stem[-1] not in "wxy"
    )


def _replace_suffix(word: str, rules: list[tuple[str, str]]) -> str:
    for suffix, replacement in rules:
        if word.endswith(suffix):
            stem = word[: -len(suffix)]
            return stem + replacement if _measure(stem) > 0 else word
    return word


@lru_cache(maxsize=1 << 16)
def stem(word: str) -> str:
    """The Porter stem of a lower-case English word; other words are returned as they are."""
    if len(word) <= 2 or not word.isascii() or not word.isalpha():
        return word
    # Step 1a: plurals.
    if word.endswith("sses") or word.endswith("ies"):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    # Step 1b: -ed, -ing.
    stripped = False
    if word.endswith("eed"):
        if _measure(word[:-3]) > 0:
            word = word[:-1]
    elif word.endswith("ed") and _has_vowel(word[:-2]):
        word, stripped = word[:-2], True
    elif word.endswith("ing") and _has_vowel(word[:-3]):
        word, stripped = word[:-3], True
    if stripped:
        if word.endswith(("at", "bl", "iz")):
            word += "e"
        elif _double_consonant(word) and word[-1] not in "lsz":
            word = word[:-1]
        elif _measure(word) == 1 and _cvc(word):
            word += "e"
    # Step 1c: y -> i after a vowel.
    if word.endswith("y") and _has_vowel(word[:-1]):
        word = word[:-1] + "i"
    # Steps 2 and 3: derivational suffixes to simpler ones.
    word = _replace_suffix(word, _STEP2_BY_LENGTH)
    word = _replace_suffix(word, _STEP3_BY_LENGTH)
    # Step 4: drop a suffix from a long enough stem.
    for suffix in _STEP4_BY_LENGTH:
        if word.endswith(suffix):
            stem = word[: -len(suffix)]
            if _measure(stem) > 1 and (suffix != "ion" or stem.endswith(("s", "t"))):
                word = stem
            break
    # Step 5: a final -e, and -ll.
    if word.endswith("e"):
        stem = word[:-1]
        measure = _measure(stem)
        if measure > 1 or (measure == 1 and not _cvc(stem)):
            word = stem
    if word.endswith("ll") and _measure(word) > 1:
        word = word[:-1]
    return word


def _cjk_tokens(run: str) -> list[str]:
    tokens = [c for c in run if c not in _CJK_STOP_CHARS]
    tokens.extend(run[i : i + 2] for i in range(len(run) - 1))
    return tokens


def tokenize(text: str) -> list[str]:
    """The tokens of `text`, in no particular order, repeated as often as they occur."""
    text = unicodedata.normalize("NFKC", text).lower()
    if not text.isascii():
        # Combining marks left after NFKC (Arabic and Hebrew vowel signs, say) would split
        # words in two, and readers write the same word with or without them. Kana and
        # accented Latin letters are composed by NFKC, so they keep their marks.
        text = "".join(c for c in text if c != "\u0640" and unicodedata.category(c) != "Mn")
    tokens: list[str] = []
    # re.split with a capturing group alternates: other text, a CJK run, other text, ...
    for position, part in enumerate(_CJK_RUN.split(text)):
        if position % 2:
            tokens.extend(_cjk_tokens(part))
            continue
        for word in _WORD.findall(part):
            if word in _ENGLISH_STOPWORDS or len(word) > _MAX_WORD_CHARS:
                continue
            tokens.append(stem(word))
    return tokens


def _length(tokens: list[str]) -> int:
    """Lexical units: a word counts one, and so does a CJK character (not its bigrams), so a
    Chinese chunk is not twice as "long" as an English one of the same content."""
    return sum(1 for t in tokens if len(t) != 2 or not _CJK_RUN.fullmatch(t))


@lru_cache(maxsize=1 << 16)
def token_index(token: str) -> int:
    """The token's dimension: stable across processes, platforms and Python versions."""
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=4).digest(), "big")


def _vector(weights: dict[int, float]) -> SparseVector:
    indices = sorted(weights)
    return SparseVector(tuple(indices), tuple(weights[i] for i in indices))


def document_vector(text: str) -> SparseVector:
    """BM25 term weights of a passage: tf·(k1+1) / (tf + k1·(1 - b + b·len/avg_len)).

    IDF is left out: Qdrant multiplies it in at query time (the collection's IDF modifier).
    Two tokens that share an index (a 32-bit collision) add up instead of clashing.
    """
    tokens = tokenize(text)
    if not tokens:
        return SparseVector((), ())
    norm = BM25_K1 * (1 - BM25_B + BM25_B * _length(tokens) / BM25_AVG_LENGTH)
    weights: dict[int, float] = {}
    for token, tf in Counter(tokens).items():
        index = token_index(token)
        weights[index] = weights.get(index, 0.0) + tf * (BM25_K1 + 1) / (tf + norm)
    return _vector(weights)


def query_vector(text: str) -> SparseVector:
    """Each distinct token of the question with weight 1: the score is then the sum over the
    question's tokens of IDF * the passage's BM25 weight."""
    return _vector({token_index(token): 1.0 for token in set(tokenize(text))})


def document_vectors(texts: list[str]) -> list[SparseVector]:
    return [document_vector(text) for text in texts]
