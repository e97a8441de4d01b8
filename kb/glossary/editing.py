"""Reading and editing one department's glossary on its pages: the search, a page of
entries, and saving an entry as someone's edit. Saves and deletes are ordinary
save()/delete() calls, so kb/glossary/signals.py audits each one."""

from __future__ import annotations

from django.core.paginator import Page, Paginator
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, QuerySet
from django.utils.translation import gettext

from kb.accounts.models import Department, Membership
from kb.glossary.forms import EntryForm
from kb.glossary.models import GlossaryEntry

PAGE_SIZE = 50
# The columns a search looks in (case ignored, anywhere in the text).
SEARCHED = ("term", "abbreviations", "synonyms", "term_zh", "term_en", "definition")


def glossaries_of(user_id: int) -> list[Membership]:
    """The person's memberships, by department name, each with its glossary's entry_count."""
    return list(
        Membership.objects.filter(user_id=user_id)
        .select_related("department")
        .annotate(entry_count=Count("department__glossary_entries"))
        .order_by("department__name")
    )


def search(entries: QuerySet[GlossaryEntry], query: str) -> QuerySet[GlossaryEntry]:
    if not query:
        return entries
    rule = Q()
    for name in SEARCHED:
        rule |= Q(**{f"{name}__icontains": query})
    return entries.filter(rule)


def clean_query(text: str) -> str:
    """A search as typed, with its spaces collapsed and at most 200 characters."""
    return " ".join(text.split())[:200]


def entries_page(
    department: Department, query: str, page_number: str | None
) -> Page[GlossaryEntry]:
    """The page of the department's entries that match `query`, by term; a page number that
    is not one gives the first or the last page, as Paginator.get_page does."""
    entries = search(GlossaryEntry.objects.filter(department=department), query)
    return Paginator(entries.order_by("term", "pk"), PAGE_SIZE).get_page(page_number)


def entry_count(department: Department) -> int:
    return GlossaryEntry.objects.filter(department=department).count()


def save_entry(form: EntryForm, user_id: int) -> GlossaryEntry | None:
    """Save a valid form as `user_id`'s edit; None (and the error on the form) when another
    editor saved the same term first (the unique constraint, not a crash)."""
    try:
        with transaction.atomic():
            entry: GlossaryEntry = form.save(commit=False)
            entry.updated_by_id = user_id
            entry.save()
    except IntegrityError:
        form.add_error("term", gettext("This term was just added by someone else."))
        return None
    return entry
