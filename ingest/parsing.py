"""Turn an uploaded file into structured text elements with `unstructured`.

PDFs use the text layer (`fast` strategy); `hi_res` needs layout models that cannot be fetched
offline. Everything runs without network access: see packaging/README.md for the spaCy model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple


class FileKind(NamedTuple):
    label: str
    # Originals are stored under opaque names, so the type comes from the uploaded name and
    # is handed to unstructured explicitly instead of letting it sniff (it reads Markdown as
    # plain text).
    content_type: str


SUPPORTED_EXTENSIONS: dict[str, FileKind] = {
    ".pdf": FileKind("PDF", "application/pdf"),
    ".docx": FileKind(
        "Word document",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    ".md": FileKind("Markdown", "text/markdown"),
    ".markdown": FileKind("Markdown", "text/markdown"),
    ".txt": FileKind("plain text", "text/plain"),
}


class ParseError(Exception):
    """The file could not be turned into text; the message is meant for an admin."""


class UnsupportedFileType(ParseError):
    pass


@dataclass(frozen=True)
class ParsedElement:
    text: str
    category: str
    page: int | None
    section: tuple[str, ...] = field(default_factory=tuple)


def supported_types_text() -> str:
    return ", ".join(sorted(SUPPORTED_EXTENSIONS))


def check_supported(filename: str) -> str:
    """Return the lower-case extension, or raise UnsupportedFileType with a clear message."""
    extension = Path(filename).suffix.lower()
    if extension not in SUPPORTED_EXTENSIONS:
        raise UnsupportedFileType(
            f"{filename!r}: files of type {extension or '(no extension)'} are not supported; "
            f"supported types are {supported_types_text()}"
        )
    return extension


def parse_file(path: Path, filename: str) -> list[ParsedElement]:
    """Partition `path` (stored under an opaque name) using the type of the original `filename`."""
    extension = check_supported(filename)
    try:
        from unstructured.partition.auto import partition

        elements = partition(
            filename=str(path),
            content_type=SUPPORTED_EXTENSIONS[extension].content_type,
            metadata_filename=filename,
            # PDFs: the text layer. Other formats ignore the strategy.
            strategy="fast",
        )
    except UnsupportedFileType:
        raise
    except Exception as exc:
        raise ParseError(
            f"{filename!r} could not be read as {SUPPORTED_EXTENSIONS[extension].label}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc

    parsed: list[ParsedElement] = []
    section: list[str] = []
    for element in elements:
        text = str(element).strip()
        if not text:
            continue
        category = str(getattr(element, "category", "Text"))
        metadata = getattr(element, "metadata", None)
        page = getattr(metadata, "page_number", None)
        depth = getattr(metadata, "category_depth", None)
        if category == "Title":
            # Keep a breadcrumb of headings: a deeper heading extends it, a same-or-higher
            # level one replaces the tail. Formats without depth are treated as flat.
            level = depth if isinstance(depth, int) and depth >= 0 else 0
            section = [*section[:level], text]
        parsed.append(
            ParsedElement(
                text=text,
                category=category,
                page=page if isinstance(page, int) else None,
                section=tuple(section),
            )
        )
    if not parsed:
        raise ParseError(f"{filename!r} contains no extractable text")
    return parsed
