"""The auditor pages: the record list with filters, one record, who saw a document, chain
verification and export. Only auditors (kb.accounts.access.is_auditor) see them; anyone else
signed in gets the ordinary 404, so the pages do not confirm they exist, and the attempt is
recorded as `access.denied`. Reading the trail is itself recorded (`audit.viewed`,
`audit.verified`, `audit.exported`).

The views only read the request and render: what they show comes from kb/audit/queries.py
(paging, one record's place in the chain, who saw a document), kb/audit/reading.py (records
read defensively and summarized), kb/audit/verify.py and kb/audit/exports.py."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, render
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_http_methods

from kb.accounts.access import is_auditor
from kb.audit.exports import start_export
from kb.audit.forms import ExportForm, RecordFilterForm
from kb.audit.models import AuditRecord
from kb.audit.queries import (
    PAGE_SIZE,
    chain_place,
    document_titles,
    document_trail,
    last_verification,
    page_of,
    raw_filters,
)
from kb.audit.reading import (
    action_label,
    details_of,
    document_ids_of,
    pretty_details,
    rows,
    summarize,
)
from kb.audit.trail import denied, record
from kb.audit.verify import Report, verify_and_record

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


@auditor_required
@require_GET
def record_list(request: HttpRequest) -> HttpResponse:
    form = RecordFilterForm(request.GET)
    valid = form.is_valid()
    page = page_of(
        form.apply(AuditRecord.objects.all()), request.GET.get("before"), request.GET.get("after")
    )
    record(
        "audit.viewed",
        details={"filters": form.filters() if valid else raw_filters(request.GET)},
    )
    return render(
        request,
        "audit/records.html",
        {
            "form": form,
            "rows": rows(page.entries),
            "page": page,
            "page_size": PAGE_SIZE,
            "query": urlencode(form.filters()) if valid else "",
            "filtered": bool(form.filters()) if valid else True,
            "valid": valid,
            "section": "records",
        },
    )


@auditor_required
@require_GET
def record_detail(request: HttpRequest, seq: int) -> HttpResponse:
    entry = get_object_or_404(AuditRecord, seq=seq)
    document_ids = document_ids_of(entry)
    titles = document_titles(document_ids)
    place = chain_place(entry)
    record("audit.viewed", target=entry, details={"record": entry.seq})
    return render(
        request,
        "audit/record.html",
        {
            "entry": entry,
            "label": action_label(entry.action),
            "summary": summarize(entry.action, details_of(entry), limit=400),
            "pretty_details": pretty_details(entry),
            "documents": [(d, titles.get(d)) for d in document_ids],
            "previous_seq": place.previous_seq,
            "next_seq": place.next_seq,
            "own_hash_ok": place.own_hash_ok,
            "link_ok": place.link_ok,
            "section": "records",
        },
    )


@auditor_required
@require_GET
def document_access(request: HttpRequest, document_id: int) -> HttpResponse:
    """Who saw this document through the knowledge base. The auditor need not be able to
    read the document, and it may be deleted: its id stays in the trail."""
    trail = document_trail(document_id, request.GET.get("before"), request.GET.get("after"))
    record("audit.viewed", target=("document", document_id), details={"document": document_id})
    return render(
        request,
        "audit/document.html",
        {
            "document_id": document_id,
            "document": trail.document,
            "last_known_path": trail.last_known_path,
            "ever_recorded": trail.ever_recorded,
            "people": trail.people,
            "rows": rows(trail.page.entries, document_id=document_id),
            "page": trail.page,
            "section": "records",
        },
    )


@auditor_required
@require_http_methods(["GET", "POST"])
def verify_trail(request: HttpRequest) -> HttpResponse:
    report: Report | None = verify_and_record() if request.method == "POST" else None
    last = last_verification()
    return render(
        request,
        "audit/verify.html",
        {
            "report": report,
            "last": last,
            "last_details": details_of(last) if last is not None else {},
            "section": "verify",
        },
    )


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
    started = start_export(form)
    response = StreamingHttpResponse(started.lines, content_type=started.content_type)
    response["Content-Disposition"] = f'attachment; filename="{started.filename}"'
    response["Cache-Control"] = "no-store"
    return response
