"""Reading audit records for people: defensively, because a record edited behind the
database's back may hold anything and the auditor must still be able to look at it, and in
one line each (what the record says, in the reader's language)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.utils.text import Truncator
from django.utils.translation import gettext

from kb.audit.models import AuditRecord
from kb.audit.trail import ACTIONS


def details_of(entry: AuditRecord) -> dict[str, Any]:
    try:
        return entry.details
    except ValueError:
        return {}


def document_ids_of(entry: AuditRecord) -> list[int]:
    try:
        return entry.document_id_list
    except ValueError:
        return []


def pretty_details(entry: AuditRecord) -> str:
    """The details indented for reading; as stored when they are not JSON."""
    try:
        return json.dumps(json.loads(entry.details_json), indent=2, ensure_ascii=False)
    except ValueError:
        return entry.details_json


def cites(details: dict[str, Any], document_id: int) -> bool:
    """Whether an answer's details name the document among the passages it cited."""
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


def action_label(action: str) -> str:
    """The action's label in the reader's language ("" for an action no longer known)."""
    label = ACTIONS.get(action)
    return gettext(label) if label else ""


@dataclass
class Row:
    entry: AuditRecord
    label: str
    summary: str
    cited: bool | None = None  # on the document page: was this document cited in the answer


def rows(entries: list[AuditRecord], document_id: int | None = None) -> list[Row]:
    result = []
    for entry in entries:
        details = details_of(entry)
        cited = None
        if document_id is not None and entry.action == "question.asked":
            cited = cites(details, document_id)
        result.append(
            Row(
                entry=entry,
                label=action_label(entry.action) or entry.action,
                summary=summarize(entry.action, details),
                cited=cited,
            )
        )
    return result
