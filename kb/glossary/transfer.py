"""CSV export and import of a department's glossary.

The export is UTF-8 with a byte order mark, because Excel reads a CSV without one in the
system's code page and turns Chinese into mojibake. The import takes UTF-8 with or without
the mark (Excel's "CSV UTF-8" writes one), comma, semicolon or tab separated, with English or
Chinese column names. It is all or nothing: every row is checked first, any problem is
reported by row number (as Excel numbers them: the header is row 1) and nothing is saved;
otherwise every row is saved in one transaction. A row whose term (ignoring case) is already
in the glossary updates that entry; the columns the file leaves out stay as they are.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext

from kb.accounts.models import Department
from kb.audit.trail import record
from kb.glossary.models import LIST_JOINER, GlossaryEntry, clean_form, split_forms

MAX_IMPORT_BYTES = 1024 * 1024
MAX_IMPORT_ROWS = 5000

# Column name in the file -> model field. The export writes the first (English) names.
COLUMNS: dict[str, str] = {
    "term": "term",
    "abbreviations": "abbreviations",
    "synonyms": "synonyms",
    "chinese": "term_zh",
    "english": "term_en",
    "definition": "definition",
}
_ALIASES: dict[str, str] = {
    **{name: name for name in COLUMNS},
    "abbreviation": "abbreviations",
    "synonym": "synonyms",
    "preferred chinese": "chinese",
    "preferred english": "english",
    "notes": "definition",
    "definition or notes": "definition",
    "术语": "term",
    "词条": "term",
    "缩写": "abbreviations",
    "同义词": "synonyms",
    "中文": "chinese",
    "首选中文": "chinese",
    "英文": "english",
    "首选英文": "english",
    "释义": "definition",
    "定义": "definition",
    "说明": "definition",
}
_LIST_FIELDS = ("abbreviations", "synonyms")
# A cell that starts with one of these is a formula to a spreadsheet (CSV injection): the
# export puts an apostrophe before it, which Excel hides, and the import takes it off again.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class ImportRejected(Exception):
    """The file cannot be imported; `errors` says why, row by row. Nothing was saved."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass
class PlannedRow:
    row: int  # as the spreadsheet numbers it
    values: dict[str, str]  # model field -> cleaned value, for the columns the file has
    entry: GlossaryEntry | None = None  # the entry it updates
    changed: list[str] = field(default_factory=list)  # model fields an update changes

    @property
    def status(self) -> str:
        if self.entry is None:
            return "new"
        return "changed" if self.changed else "unchanged"


@dataclass
class ImportPlan:
    rows: list[PlannedRow]

    @property
    def created(self) -> int:
        return sum(1 for r in self.rows if r.status == "new")

    @property
    def updated(self) -> int:
        return sum(1 for r in self.rows if r.status == "changed")

    @property
    def unchanged(self) -> int:
        return sum(1 for r in self.rows if r.status == "unchanged")


# --- export ----------------------------------------------------------------------------------


def _safe_cell(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def export_csv(entries: Iterable[GlossaryEntry]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(list(COLUMNS))
    for entry in entries:
        writer.writerow([_safe_cell(str(getattr(entry, name))) for name in COLUMNS.values()])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


@dataclass(frozen=True)
class GlossaryFile:
    name: str
    content: bytes


def export_glossary(department: Department) -> GlossaryFile:
    """The department's whole glossary as a CSV file named for it and today; the export is
    recorded (`glossary.exported`)."""
    entries = list(GlossaryEntry.objects.filter(department=department).order_by("term", "pk"))
    record(
        "glossary.exported",
        target=("department", department.pk),
        department=department,
        details={"entries": len(entries)},
    )
    name = f"glossary-{department.slug}-{timezone.localdate().isoformat()}.csv"
    return GlossaryFile(name=name, content=export_csv(entries))


# --- import ----------------------------------------------------------------------------------


def decode(data: bytes) -> str:
    if len(data) > MAX_IMPORT_BYTES:
        raise ImportRejected(
            [
                gettext("The file is larger than %(size)s MB: split it into several files.")
                % {"size": MAX_IMPORT_BYTES // (1024 * 1024)}
            ]
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportRejected(
            [
                gettext(
                    "The file is not UTF-8 text (Excel's plain “CSV” is saved in the computer's "
                    "own code page, such as GBK). In Excel, save it as “CSV UTF-8 (Comma "
                    "delimited)” and import that file."
                )
            ]
        ) from None


def _delimiter(text: str) -> str:
    header = text.split("\n", 1)[0]
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _cell(value: str) -> str:
    if value.startswith("'") and value[1:2] and value[1:].startswith(_FORMULA_START):
        return value[1:]
    return value


def _clean(name: str, value: str) -> str:
    if name in _LIST_FIELDS:
        return LIST_JOINER.join(split_forms(value))
    if name == "definition":
        return value.strip()
    return clean_form(value)


def clean_values(values: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Field values as stored, and what is wrong with them (the form uses the same rules)."""
    cleaned = {name: _clean(name, value or "") for name, value in values.items()}
    problems: list[str] = []
    if "term" in cleaned and not cleaned["term"]:
        problems.append(gettext("the term is empty"))
    for name, value in cleaned.items():
        model_field = GlossaryEntry._meta.get_field(name)
        assert isinstance(model_field, models.Field)
        limit = model_field.max_length
        if limit is not None and len(value) > limit:
            problems.append(
                gettext("%(field)s is longer than %(limit)s characters")
                % {"field": str(model_field.verbose_name), "limit": limit}
            )
    return cleaned, problems


def _header(cells: list[str]) -> tuple[list[str | None], list[str]]:
    fields: list[str | None] = []
    errors: list[str] = []
    for position, cell in enumerate(cells, start=1):
        name = " ".join(cell.strip().lower().split())
        if not name:
            fields.append(None)  # a blank column Excel keeps after the last one
            continue
        column = _ALIASES.get(name)
        if column is None:
            errors.append(
                gettext(
                    "Row 1, column %(position)s: unknown column “%(name)s”. The columns are: "
                    "%(columns)s."
                )
                % {"position": position, "name": cell.strip(), "columns": ", ".join(COLUMNS)}
            )
        elif COLUMNS[column] in fields:
            errors.append(
                gettext("Row 1: the column “%(name)s” appears twice.") % {"name": cell.strip()}
            )
        fields.append(COLUMNS[column] if column else None)
    if "term" not in fields and not errors:
        errors.append(gettext("Row 1 must name the columns, and one of them must be “term”."))
    return fields, errors


def parse(text: str) -> list[PlannedRow]:
    """The file's rows, cleaned and checked; ImportRejected lists every problem found."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    errors: list[str] = []
    rows: list[PlannedRow] = []
    seen: dict[str, int] = {}
    try:
        records = list(reader)
    except csv.Error as exc:
        raise ImportRejected(
            [gettext("Row %(row)s: %(error)s") % {"row": reader.line_num, "error": exc}]
        ) from None
    if not records:
        raise ImportRejected([gettext("The file is empty.")])
    fields, errors = _header(records[0])
    if errors:
        raise ImportRejected(errors)
    if len(records) - 1 > MAX_IMPORT_ROWS:
        raise ImportRejected(
            [
                gettext("The file has more than %(limit)s rows: split it into several files.")
                % {"limit": MAX_IMPORT_ROWS}
            ]
        )
    for number, cells in enumerate(records[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue
        extra = [cell for cell in cells[len(fields) :] if cell.strip()]
        if extra:
            errors.append(
                gettext("Row %(row)s has more cells than the header has columns.") % {"row": number}
            )
            continue
        raw = {
            name: _cell(cells[i]) if i < len(cells) else ""
            for i, name in enumerate(fields)
            if name is not None
        }
        values, problems = clean_values(raw)
        key = values["term"].lower()
        if key and key in seen:
            problems.append(
                gettext("the term “%(term)s” is already on row %(row)s")
                % {"term": values["term"], "row": seen[key]}
            )
        seen.setdefault(key, number)
        if problems:
            errors.append(
                gettext("Row %(row)s: %(problems)s.")
                % {"row": number, "problems": "; ".join(problems)}
            )
            continue
        rows.append(PlannedRow(row=number, values=values))
    if errors:
        raise ImportRejected(errors)
    if not rows:
        raise ImportRejected([gettext("The file has no entries below its header row.")])
    return rows


def plan(department: Department, text: str) -> ImportPlan:
    """What importing `text` into the department's glossary would do; nothing is saved."""
    rows = parse(text)
    existing = {e.term.lower(): e for e in GlossaryEntry.objects.filter(department=department)}
    for row in rows:
        row.entry = existing.get(row.values["term"].lower())
        if row.entry is not None:
            row.changed = [
                name for name, value in row.values.items() if getattr(row.entry, name) != value
            ]
    return ImportPlan(rows)


def import_csv(department: Department, text: str, *, user_id: int | None) -> ImportPlan:
    """Save every row of `text` in one transaction, or nothing (ImportRejected)."""
    with transaction.atomic():
        # One import at a time per department, so two files cannot interleave their rows.
        Department.objects.select_for_update().filter(pk=department.pk).first()
        result = plan(department, text)
        for row in result.rows:
            if row.entry is None:
                entry = GlossaryEntry(department=department, updated_by_id=user_id, **row.values)
                entry.save()
            elif row.changed:
                for name in row.changed:
                    setattr(row.entry, name, row.values[name])
                row.entry.updated_by_id = user_id
                row.entry.save(update_fields=[*row.changed, "updated_by", "updated_at"])
        record(
            "glossary.imported",
            target=("department", department.pk),
            department=department,
            details={
                "rows": len(result.rows),
                "created": result.created,
                "updated": result.updated,
                "unchanged": result.unchanged,
                "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            },
        )
    return result
