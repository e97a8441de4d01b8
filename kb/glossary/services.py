"""Which glossary entries a question mentions, and what they add to its search and prompt.

The glossaries that apply are those of the departments the asking person is a member of,
read per request like every other access decision (kb/accounts/access.py). A form matches
as a whole word, ignoring case, in Latin script ("PO" in "the PO limit", "POs", "PO's", not
in "POST"), and as a substring in Chinese, which has no spaces between words. A form written
in capitals matches only in capitals: "IT" is not the "it" of "is it approved?".
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from inference.answering import GlossaryTerm
from kb.accounts.access import AnyUser
from kb.glossary.models import GlossaryEntry, clean_form

# At most this many entries are given to the model and expand the search: a question that
# mentions more is rare, and each one costs prompt tokens.
MAX_MATCHED_TERMS = 20

_CJK = re.compile(
    "[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f]"
)
# What may follow a Latin form and still be the same word: a plural or a possessive.
_SUFFIXES = ("", "s", "es", "'s", "\u2019s")


def _joins_word(character: str) -> bool:
    """Whether a character next to a Latin form makes it part of a longer word. Chinese
    characters do not: "PO的审批" mentions "PO"."""
    return character.isalnum() and not _CJK.match(character)


def _whole_word_in(text: str, form: str) -> bool:
    start = text.find(form)
    while start != -1:
        end = start + len(form)
        if start == 0 or not _joins_word(text[start - 1]):
            for suffix in _SUFFIXES:
                after = end + len(suffix)
                if text.startswith(suffix, end) and (
                    after == len(text) or not _joins_word(text[after])
                ):
                    return True
        start = text.find(form, start + 1)
    return False


def mentions(text: str, form: str) -> bool:
    """Whether `text` (already cleaned with clean_form) mentions `form`."""
    form = clean_form(form)
    if not form:
        return False
    if _CJK.search(form):
        return form.casefold() in text.casefold()
    if form.isupper():
        return _whole_word_in(text, form)
    return _whole_word_in(text.casefold(), form.casefold())


def matching_entries(texts: Iterable[str], entries: Iterable[GlossaryEntry]) -> list[GlossaryEntry]:
    """The entries any of `texts` mentions, in the order given, at most MAX_MATCHED_TERMS."""
    cleaned = [clean_form(text) for text in texts if text and text.strip()]
    matched: list[GlossaryEntry] = []
    for entry in entries:
        if any(mentions(text, form) for form in entry.forms() for text in cleaned):
            matched.append(entry)
            if len(matched) >= MAX_MATCHED_TERMS:
                break
    return matched


def entries_for(user: AnyUser) -> list[GlossaryEntry]:
    """The entries of every department the person is a member of, in one query."""
    if not (user.is_authenticated and user.is_active):
        return []
    return list(
        GlossaryEntry.objects.filter(department__memberships__user_id=int(user.pk or 0))
        .only("term", "abbreviations", "synonyms", "term_zh", "term_en", "definition")
        .order_by("department_id", "term")
        .distinct()
    )


def as_term(entry: GlossaryEntry) -> GlossaryTerm:
    return GlossaryTerm(
        term=clean_form(entry.term),
        english=clean_form(entry.term_en),
        chinese=clean_form(entry.term_zh),
        abbreviations=tuple(entry.abbreviation_list),
        synonyms=tuple(entry.synonym_list),
        definition=" ".join(entry.definition.split()),
    )


def terms_for_question(user: AnyUser, *texts: str) -> list[GlossaryTerm]:
    """The glossary entries the question (and its search query, for a follow-up) mentions,
    from the asking person's departments."""
    return [as_term(entry) for entry in matching_entries(texts, entries_for(user))]


def lexical_expansion(terms: Iterable[GlossaryTerm]) -> tuple[str, ...]:
    """Every form of the matched terms, for the lexical (BM25) query: a question that says
    "PO" then also matches a passage that only says "采购订单"."""
    return tuple(form for term in terms for form in term.forms)
