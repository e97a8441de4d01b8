"""A department's terminology: terms, abbreviations, synonyms and the preferred Chinese and
English forms. Questions asked by the department's members are expanded with them, and the
entries a question mentions are given to the model with the sources (kb/glossary/services.py).
"""

from __future__ import annotations

import re
import unicodedata

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _

from kb.accounts.models import Department

# What separates several abbreviations or synonyms in one field: ";" as the CSV and the form
# write it, and the full-width semicolon (U+FF1B) a Chinese keyboard types. Commas are not
# separators: "Accounts Payable, Germany" is one synonym.
_LIST_SEPARATOR = re.compile("[;\uff1b\n]")
LIST_JOINER = "; "


def clean_form(text: str) -> str:
    """One form as stored: NFKC (a full-width "PO" typed with a Chinese keyboard is "PO"),
    inner whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def split_forms(text: str) -> list[str]:
    """The forms of a list field, cleaned, without blanks or repeats (ignoring case)."""
    forms: list[str] = []
    seen: set[str] = set()
    for part in _LIST_SEPARATOR.split(text or ""):
        form = clean_form(part)
        if form and form.casefold() not in seen:
            seen.add(form.casefold())
            forms.append(form)
    return forms


class GlossaryEntry(models.Model):
    department = models.ForeignKey(
        Department, on_delete=models.CASCADE, related_name="glossary_entries"
    )
    term = models.CharField(_("Term"), max_length=200)
    abbreviations = models.CharField(_("Abbreviations"), max_length=500, blank=True)
    synonyms = models.CharField(_("Synonyms"), max_length=1000, blank=True)
    term_zh = models.CharField(_("Preferred Chinese"), max_length=200, blank=True)
    term_en = models.CharField(_("Preferred English"), max_length=200, blank=True)
    definition = models.TextField(_("Definition or notes"), max_length=1000, blank=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["term"]
        constraints = [
            # "PO" and "po" are the same term: the CSV import matches rows to entries this way.
            models.UniqueConstraint(
                "department", Lower("term"), name="one_glossary_term_per_department"
            )
        ]

    def __str__(self) -> str:
        return self.term

    @property
    def abbreviation_list(self) -> list[str]:
        return split_forms(self.abbreviations)

    @property
    def synonym_list(self) -> list[str]:
        return split_forms(self.synonyms)

    def forms(self) -> list[str]:
        """Every way of writing the term, the headword first, without repeats (ignoring case)."""
        seen: set[str] = set()
        out: list[str] = []
        for form in [
            self.term,
            self.term_en,
            self.term_zh,
            *self.abbreviation_list,
            *self.synonym_list,
        ]:
            form = clean_form(form)
            if form and form.casefold() not in seen:
                seen.add(form.casefold())
                out.append(form)
        return out
