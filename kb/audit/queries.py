"""What the auditor pages read from the trail: a page of records (keyset paging, as fast on
the millionth page as on the first), one record's place in the chain, and who saw a document.
None of it writes: the pages record that the trail was read (kb/audit/views.py)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from django.db import DatabaseError, connection, transaction
from django.db.models import Count, JSONField, Max, Min, Q, QuerySet
from django.db.models.functions import Cast

from kb.audit.chain import HASHED_FIELDS, record_hash
from kb.audit.forms import FILTER_FIELDS
from kb.audit.models import GENESIS_HASH, AuditDocument, AuditRecord
from kb.audit.reading import cites, details_of
from kb.library.models import Document

PAGE_SIZE = 50
# Records whose details are parsed in Python are read this many at a time.
READ_BATCH = 1000
# What "saw this document through the knowledge base" means: its passages were retrieved
# for someone's question, or someone opened or downloaded it.
SEEN_ACTIONS = ("question.asked", "document.viewed", "document.downloaded")


@dataclass
class Page:
    entries: list[AuditRecord]
    newer: int | None = None  # `after` cursor for the newer page, if there is one
    older: int | None = None  # `before` cursor for the older page, if there is one
    at_newest: bool = True


def _cursor(value: str | None) -> int | None:
    if value is not None and value.isdigit() and len(value) < 19:
        return int(value)
    return None


def page_of(records: QuerySet[AuditRecord], before: str | None, after: str | None) -> Page:
    """The page of `records` older than `before` or newer than `after` (cursors as the
    query string gives them: anything that is not a record number is ignored), newest first."""
    older_than, newer_than = _cursor(before), _cursor(after)
    entries: list[AuditRecord] = []
    if newer_than is not None and older_than is None:
        entries = list(records.filter(seq__gt=newer_than).order_by("seq")[:PAGE_SIZE])[::-1]
    if not entries:
        query = records.order_by("-seq")
        if older_than is not None:
            query = query.filter(seq__lt=older_than)
        entries = list(query[:PAGE_SIZE])
    if not entries:
        return Page(entries=[], at_newest=older_than is None)
    has_newer = records.filter(seq__gt=entries[0].seq).exists()
    has_older = records.filter(seq__lt=entries[-1].seq).exists()
    return Page(
        entries=entries,
        newer=entries[0].seq if has_newer else None,
        older=entries[-1].seq if has_older else None,
        at_newest=not has_newer,
    )


def raw_filters(query: Mapping[str, str]) -> dict[str, str]:
    """The filters as typed, for the record of a search whose filters are not valid."""
    return {name: query[name][:200] for name in FILTER_FIELDS if query.get(name)}


# --------------------------------------------------------------------------------------------
# One record


@dataclass
class ChainPlace:
    previous_seq: int | None
    next_seq: int | None
    own_hash_ok: bool
    link_ok: bool | None  # None: the predecessor is not in the table (purged)


def chain_place(entry: AuditRecord) -> ChainPlace:
    """The record's neighbours, and whether its hash and its link to its predecessor hold."""
    previous = (
        AuditRecord.objects.filter(seq__lt=entry.seq).order_by("-seq").values("seq", "hash").first()
    )
    following = (
        AuditRecord.objects.filter(seq__gt=entry.seq)
        .order_by("seq")
        .values_list("seq", flat=True)
        .first()
    )
    own_hash_ok = record_hash(
        entry.prev_hash, {name: getattr(entry, name) for name in HASHED_FIELDS}
    ) == (entry.hash)
    if previous is not None and previous["seq"] == entry.seq - 1:
        link_ok: bool | None = previous["hash"] == entry.prev_hash
    elif entry.seq == 1:
        link_ok = entry.prev_hash == GENESIS_HASH
    else:
        link_ok = None  # the predecessor is not in the table (purged): the verifier checks it
    return ChainPlace(
        previous_seq=previous["seq"] if previous else None,
        next_seq=following,
        own_hash_ok=own_hash_ok,
        link_ok=link_ok,
    )


def document_titles(document_ids: list[int]) -> dict[int, str]:
    return dict(Document.objects.filter(pk__in=document_ids).values_list("pk", "title"))


def last_verification() -> AuditRecord | None:
    return AuditRecord.objects.filter(action="audit.verified").order_by("-seq").first()


# --------------------------------------------------------------------------------------------
# Who saw a document


@dataclass
class Person:
    actor_id: int | None
    actor: str
    asked: int = 0
    cited: int = 0
    viewed: int = 0
    downloaded: int = 0
    first: datetime | None = None
    last: datetime | None = None
    departments: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.asked + self.viewed + self.downloaded


def _cited_counts(
    asked: QuerySet[AuditRecord], document_id: int
) -> dict[tuple[int | None, str], int]:
    """Per person, how many answers cited the document (details["cited"][].document)."""
    if connection.vendor == "postgresql":
        try:
            with transaction.atomic():  # a savepoint: a record that is not JSON fails the cast
                grouped = (
                    asked.annotate(parsed=Cast("details_json", JSONField()))
                    # jsonb containment; spelled as a dict because the stubs type the lookup
                    # by the column's own (text) type
                    .filter(**{"parsed__cited__contains": [{"document": document_id}]})
                    .values("actor_id", "actor")
                    .annotate(n=Count("seq"))
                    .order_by()
                )
                return {(row["actor_id"], row["actor"]): row["n"] for row in grouped}
        except DatabaseError:
            pass  # read them one by one below, skipping what does not parse
    counts: dict[tuple[int | None, str], int] = {}
    for actor_id, actor, details_json in asked.values_list(
        "actor_id", "actor", "details_json"
    ).iterator(chunk_size=READ_BATCH):
        try:
            details = json.loads(details_json)
        except ValueError:
            continue
        if isinstance(details, dict) and cites(details, document_id):
            counts[(actor_id, actor)] = counts.get((actor_id, actor), 0) + 1
    return counts


def _people(records: QuerySet[AuditRecord], document_id: int) -> list[Person]:
    grouped = (
        records.values("actor_id", "actor")
        .annotate(
            asked=Count("seq", filter=Q(action="question.asked")),
            viewed=Count("seq", filter=Q(action="document.viewed")),
            downloaded=Count("seq", filter=Q(action="document.downloaded")),
            first=Min("at"),
            last=Max("at"),
        )
        .order_by("-last")
    )
    cited = _cited_counts(records.filter(action="question.asked"), document_id)
    departments: dict[tuple[int | None, str], list[str]] = {}
    for actor_id, actor, department in (
        records.exclude(department="")
        .values_list("actor_id", "actor", "department")
        .distinct()
        .order_by("department")
    ):
        departments.setdefault((actor_id, actor), []).append(department)
    return [
        Person(
            actor_id=row["actor_id"],
            actor=row["actor"],
            asked=row["asked"],
            cited=cited.get((row["actor_id"], row["actor"]), 0),
            viewed=row["viewed"],
            downloaded=row["downloaded"],
            first=row["first"],
            last=row["last"],
            departments=departments.get((row["actor_id"], row["actor"]), []),
        )
        for row in grouped
    ]


@dataclass
class DocumentTrail:
    document: Document | None  # None: deleted (its id stays in the trail)
    last_known_path: str  # for a deleted document: its path when last uploaded or deleted
    ever_recorded: bool
    people: list[Person]
    page: Page


def document_trail(document_id: int, before: str | None, after: str | None) -> DocumentTrail:
    """Who saw the document through the knowledge base, per person and record by record.
    The auditor need not be able to read the document, and it may be deleted."""
    references = AuditDocument.objects.filter(document_id=document_id).values("record_id")
    concerning = AuditRecord.objects.filter(seq__in=references)
    seen = concerning.filter(action__in=SEEN_ACTIONS)
    document = (
        Document.objects.select_related("collection__department").filter(pk=document_id).first()
    )
    last_known_path = ""
    if document is None:
        for entry in concerning.filter(
            action__in=("document.uploaded", "document.new_version", "document.deleted")
        ).order_by("-seq")[:1]:
            path = details_of(entry).get("path")
            last_known_path = path if isinstance(path, str) else ""
    page = page_of(seen, before, after)
    people = _people(seen, document_id)
    return DocumentTrail(
        document=document,
        last_known_path=last_known_path,
        ever_recorded=concerning.exists(),
        people=people,
        page=page,
    )
