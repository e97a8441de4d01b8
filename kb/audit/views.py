"""The auditor pages: the record list with filters, one record, who saw a document, chain
verification and export. Only auditors (kb.accounts.access.is_auditor) see them; anyone else
signed in gets the ordinary 404, so the pages do not confirm they exist, and the attempt is
recorded as `access.denied`. Reading the trail is itself recorded (`audit.viewed`,
`audit.verified`, `audit.exported`)."""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.db import DatabaseError, connection, transaction
from django.db.models import Count, JSONField, Max, Min, Q, QuerySet
from django.db.models.functions import Cast
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, render
from django.utils.http import urlencode
from django.utils.text import Truncator
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_http_methods

from kb.accounts.access import is_auditor
from kb.audit.chain import HASHED_FIELDS, record_hash
from kb.audit.checkpoints import CheckpointSignatureError, read_checkpoints
from kb.audit.forms import FILTER_FIELDS, ExportForm, RecordFilterForm
from kb.audit.models import GENESIS_HASH, AuditDocument, AuditRecord
from kb.audit.siem import to_cef, to_json_line
from kb.audit.trail import ACTIONS, denied, record
from kb.audit.verify import Problem, Report, verify
from kb.library.models import Document

PAGE_SIZE = 50
EXPORT_BATCH = 1000
# What "saw this document through the knowledge base" means: its passages were retrieved
# for someone's question, or someone opened or downloaded it.
SEEN_ACTIONS = ("question.asked", "document.viewed", "document.downloaded")
EXPORT_FORMATS = {
    "jsonl": ("application/x-ndjson; charset=utf-8", "jsonl", to_json_line),
    "cef": ("text/plain; charset=utf-8", "cef", to_cef),
}

View = Callable[..., HttpResponseBase]


def auditor_required(view: View) -> View:
    """Anonymous: to the sign-in page. Signed in but not an auditor: 404, and recorded."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not is_auditor(request.user):
            denied(("audit", "trail"), reason="not an auditor", path=request.path[:200])
            raise Http404("No such page.")
        return view(request, *args, **kwargs)

    return wrapped


# --------------------------------------------------------------------------------------------
# Reading records defensively: a record edited behind the database's back may hold anything,
# and the auditor must still be able to look at it.


def _details(entry: AuditRecord) -> dict[str, Any]:
    try:
        return entry.details
    except ValueError:
        return {}


def _document_ids(entry: AuditRecord) -> list[int]:
    try:
        return entry.document_id_list
    except ValueError:
        return []


def _export_dict(entry: AuditRecord) -> dict[str, Any]:
    try:
        return entry.as_export_dict()
    except ValueError:
        readable = copy.copy(entry)
        try:
            json.loads(entry.details_json or "{}")
        except ValueError:
            readable.details_json = json.dumps({"unparseable_details_json": entry.details_json})
        if not all(part.isdigit() for part in entry.document_ids.split()):
            readable.document_ids = ""
        return readable.as_export_dict()


def _cites(details: dict[str, Any], document_id: int) -> bool:
    cited = details.get("cited")
    if not isinstance(cited, list):
        return False
    return any(isinstance(c, dict) and c.get("document") == document_id for c in cited)


def _short(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _pairs(value: dict[str, Any]) -> str:
    parts = []
    for key, inner in value.items():
        if isinstance(inner, list) and len(inner) == 2:  # a change: [before, after]
            parts.append(f"{key} {_short(inner[0])} → {_short(inner[1])}")
        elif not isinstance(inner, dict):
            parts.append(f"{key}={_short(inner)}")
    return ", ".join(parts)


def summarize(action: str, details: dict[str, Any], limit: int = 140) -> str:
    """One line about what the record says: the question, a reason, the filters used..."""
    question = details.get("question")
    if action == "question.asked" and isinstance(question, str):
        text = question
    else:
        parts = []
        for key, value in details.items():
            if key == "via" or value in ("", None, [], {}):
                continue
            if isinstance(value, list):
                parts.append(f"{key}: {len(value)}")
            elif isinstance(value, dict):
                parts.append(f"{key}: {_pairs(value)}")
            else:
                parts.append(f"{key}: {_short(value)}")
        text = "; ".join(parts)
    return Truncator(" ".join(text.split())).chars(limit)


def _action_label(action: str) -> str:
    """The action's label in the reader's language ("" for an action no longer known)."""
    label = ACTIONS.get(action)
    return gettext(label) if label else ""


@dataclass
class Row:
    entry: AuditRecord
    label: str
    summary: str
    cited: bool | None = None  # on the document page: was this document cited in the answer


def _rows(entries: list[AuditRecord], document_id: int | None = None) -> list[Row]:
    rows = []
    for entry in entries:
        details = _details(entry)
        cited = None
        if document_id is not None and entry.action == "question.asked":
            cited = _cites(details, document_id)
        rows.append(
            Row(
                entry=entry,
                label=_action_label(entry.action) or entry.action,
                summary=summarize(entry.action, details),
                cited=cited,
            )
        )
    return rows


# --------------------------------------------------------------------------------------------
# Paging by record number (keyset): as fast on the millionth page as on the first.


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


def _page(records: QuerySet[AuditRecord], request: HttpRequest) -> Page:
    before, after = _cursor(request.GET.get("before")), _cursor(request.GET.get("after"))
    entries: list[AuditRecord] = []
    if after is not None and before is None:
        entries = list(records.filter(seq__gt=after).order_by("seq")[:PAGE_SIZE])[::-1]
    if not entries:
        query = records.order_by("-seq")
        if before is not None:
            query = query.filter(seq__lt=before)
        entries = list(query[:PAGE_SIZE])
    if not entries:
        return Page(entries=[], at_newest=before is None)
    has_newer = records.filter(seq__gt=entries[0].seq).exists()
    has_older = records.filter(seq__lt=entries[-1].seq).exists()
    return Page(
        entries=entries,
        newer=entries[0].seq if has_newer else None,
        older=entries[-1].seq if has_older else None,
        at_newest=not has_newer,
    )


def _filter_query(form: RecordFilterForm) -> str:
    return urlencode(form.filters())


def _raw_filters(request: HttpRequest) -> dict[str, str]:
    return {name: request.GET[name][:200] for name in FILTER_FIELDS if request.GET.get(name)}


# --------------------------------------------------------------------------------------------
# Pages


@auditor_required
@require_GET
def record_list(request: HttpRequest) -> HttpResponse:
    form = RecordFilterForm(request.GET)
    valid = form.is_valid()
    page = _page(form.apply(AuditRecord.objects.all()), request)
    record(
        "audit.viewed",
        details={"filters": form.filters() if valid else _raw_filters(request)},
    )
    return render(
        request,
        "audit/records.html",
        {
            "form": form,
            "rows": _rows(page.entries),
            "page": page,
            "page_size": PAGE_SIZE,
            "query": _filter_query(form) if valid else "",
            "filtered": bool(form.filters()) if valid else True,
            "valid": valid,
            "section": "records",
        },
    )


@auditor_required
@require_GET
def record_detail(request: HttpRequest, seq: int) -> HttpResponse:
    entry = get_object_or_404(AuditRecord, seq=seq)
    details = _details(entry)
    try:
        pretty = json.dumps(json.loads(entry.details_json), indent=2, ensure_ascii=False)
    except ValueError:
        pretty = entry.details_json
    document_ids = _document_ids(entry)
    titles = dict(Document.objects.filter(pk__in=document_ids).values_list("pk", "title"))
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
    record("audit.viewed", target=entry, details={"record": entry.seq})
    return render(
        request,
        "audit/record.html",
        {
            "entry": entry,
            "label": _action_label(entry.action),
            "summary": summarize(entry.action, details, limit=400),
            "pretty_details": pretty,
            "documents": [(d, titles.get(d)) for d in document_ids],
            "previous_seq": previous["seq"] if previous else None,
            "next_seq": following,
            "own_hash_ok": own_hash_ok,
            "link_ok": link_ok,
            "section": "records",
        },
    )


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
                rows = (
                    asked.annotate(parsed=Cast("details_json", JSONField()))
                    # jsonb containment; spelled as a dict because the stubs type the lookup
                    # by the column's own (text) type
                    .filter(**{"parsed__cited__contains": [{"document": document_id}]})
                    .values("actor_id", "actor")
                    .annotate(n=Count("seq"))
                    .order_by()
                )
                return {(row["actor_id"], row["actor"]): row["n"] for row in rows}
        except DatabaseError:
            pass  # read them one by one below, skipping what does not parse
    counts: dict[tuple[int | None, str], int] = {}
    for actor_id, actor, details_json in asked.values_list(
        "actor_id", "actor", "details_json"
    ).iterator(chunk_size=EXPORT_BATCH):
        try:
            details = json.loads(details_json)
        except ValueError:
            continue
        if isinstance(details, dict) and _cites(details, document_id):
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


@auditor_required
@require_GET
def document_access(request: HttpRequest, document_id: int) -> HttpResponse:
    """Who saw this document through the knowledge base. The auditor need not be able to
    read the document, and it may be deleted: its id stays in the trail."""
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
            path = _details(entry).get("path")
            last_known_path = path if isinstance(path, str) else ""
    page = _page(seen, request)
    people = _people(seen, document_id)
    record("audit.viewed", target=("document", document_id), details={"document": document_id})
    return render(
        request,
        "audit/document.html",
        {
            "document_id": document_id,
            "document": document,
            "last_known_path": last_known_path,
            "ever_recorded": concerning.exists(),
            "people": people,
            "rows": _rows(page.entries, document_id=document_id),
            "page": page,
            "section": "records",
        },
    )


@auditor_required
@require_http_methods(["GET", "POST"])
def verify_trail(request: HttpRequest) -> HttpResponse:
    report: Report | None = None
    if request.method == "POST":
        checkpoints: list[dict[str, Any]] | None = None
        trouble = ""
        try:
            checkpoints = read_checkpoints()
        except CheckpointSignatureError as exc:
            trouble = str(exc)
        except (OSError, ValueError, KeyError) as exc:
            trouble = f"the checkpoint file cannot be read: {exc}"
        report = verify(checkpoints)
        if trouble:
            report.problems.insert(0, Problem("signature", 0, trouble))
        record(
            "audit.verified",
            outcome=AuditRecord.Outcome.SUCCESS if report.ok else AuditRecord.Outcome.FAILURE,
            details={
                "ok": report.ok,
                "problems": len(report.problems),
                "summary": report.summary(),
            },
        )
    last = AuditRecord.objects.filter(action="audit.verified").order_by("-seq").first()
    return render(
        request,
        "audit/verify.html",
        {
            "report": report,
            "last": last,
            "last_details": _details(last) if last is not None else {},
            "section": "verify",
        },
    )


def _export_lines(
    records: QuerySet[AuditRecord], encode: Callable[[dict[str, Any]], str]
) -> Iterator[str]:
    after = 0
    while True:
        batch = list(records.filter(seq__gt=after).order_by("seq")[:EXPORT_BATCH])
        if not batch:
            return
        for entry in batch:
            yield encode(_export_dict(entry)) + "\n"
        after = batch[-1].seq


@auditor_required
@require_GET
def export(request: HttpRequest) -> HttpResponseBase:
    """Without `format`: the export form. With it: the filtered records as a download, one
    per line, oldest first, up to the moment of the export (its own record excluded)."""
    form = ExportForm(request.GET if "format" in request.GET else None)
    if not form.is_bound or not form.is_valid():
        return render(
            request,
            "audit/export.html",
            {"form": form, "section": "export"},
            status=400 if form.is_bound else 200,
        )
    chosen = form.cleaned_data["format"]
    content_type, extension, encode = EXPORT_FORMATS[chosen]
    exported = record("audit.exported", details={"filters": form.filters(), "format": chosen})
    records = form.apply(AuditRecord.objects.filter(seq__lt=exported.seq))
    response = StreamingHttpResponse(_export_lines(records, encode), content_type=content_type)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.{extension}"'
    response["Cache-Control"] = "no-store"
    return response
