"""Exporting the trail from the auditor pages: the filtered records, oldest first, one per
line as JSON or CEF (kb/audit/siem.py), read in batches so that any number of records
streams in constant memory. The export is itself recorded (`audit.exported`), and holds the
records up to that moment, its own record excluded."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db.models import QuerySet

from kb.audit.forms import ExportForm
from kb.audit.models import AuditRecord
from kb.audit.siem import to_cef, to_json_line
from kb.audit.trail import record

EXPORT_BATCH = 1000
Encoder = Callable[[dict[str, Any]], str]
EXPORT_FORMATS: dict[str, tuple[str, str, Encoder]] = {
    "jsonl": ("application/x-ndjson; charset=utf-8", "jsonl", to_json_line),
    "cef": ("text/plain; charset=utf-8", "cef", to_cef),
}


def export_dict(entry: AuditRecord) -> dict[str, Any]:
    """The record as exported; one edited into unreadable details or document ids still
    exports, with what cannot be read set aside instead of failing the whole export."""
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


def export_lines(records: QuerySet[AuditRecord], encode: Encoder) -> Iterator[str]:
    """`records` oldest first, one encoded line each, EXPORT_BATCH at a time by record number."""
    after = 0
    while True:
        batch = list(records.filter(seq__gt=after).order_by("seq")[:EXPORT_BATCH])
        if not batch:
            return
        for entry in batch:
            yield encode(export_dict(entry)) + "\n"
        after = batch[-1].seq


@dataclass
class Export:
    lines: Iterator[str]
    content_type: str
    filename: str


def start_export(form: ExportForm) -> Export:
    """Record the export of a valid form's filters and format, and the lines to send."""
    chosen = form.cleaned_data["format"]
    content_type, extension, encode = EXPORT_FORMATS[chosen]
    exported = record("audit.exported", details={"filters": form.filters(), "format": chosen})
    records = form.apply(AuditRecord.objects.filter(seq__lt=exported.seq))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Export(
        lines=export_lines(records, encode),
        content_type=content_type,
        filename=f"audit-{stamp}.{extension}",
    )
