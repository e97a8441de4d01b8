"""The file types the product ingests, and how each one is recognised.

One table drives everything: the upload check, the content sniffing that refuses a file whose
bytes do not match its extension, and the content type handed to `unstructured`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import PurePosixPath

from ingest.errors import ContentMismatch, EncryptedFile, UnsupportedFileType


class Container(enum.Enum):
    """What the bytes of a type look like, which decides the safety checks that apply."""

    PDF = "pdf"
    OOXML = "ooxml"  # a zip of XML parts (DOCX, PPTX, XLSX)
    ARCHIVE = "archive"  # a zip that the product expands into documents
    TEXT = "text"  # any text encoding; must not look binary
    IMAGE = "image"


@dataclass(frozen=True)
class FileKind:
    extension: str
    label: str
    # Originals are stored under opaque names, so the type comes from the uploaded name and is
    # handed to unstructured explicitly instead of letting it sniff (it reads Markdown as text).
    content_type: str
    container: Container
    # Formats with pages (PDF pages, slides, sheets, image frames): chunks carry page numbers.
    paged: bool = False
    magic: tuple[bytes, ...] = ()


_ZIP = (b"PK\x03\x04",)
_KINDS = [
    FileKind(".pdf", "PDF", "application/pdf", Container.PDF, paged=True, magic=(b"%PDF-",)),
    FileKind(
        ".docx",
        "Word document",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        Container.OOXML,
        magic=_ZIP,
    ),
    FileKind(
        ".pptx",
        "PowerPoint presentation",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        Container.OOXML,
        paged=True,
        magic=_ZIP,
    ),
    FileKind(
        ".xlsx",
        "Excel workbook",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        Container.OOXML,
        paged=True,
        magic=_ZIP,
    ),
    FileKind(".csv", "CSV table", "text/csv", Container.TEXT),
    FileKind(".html", "web page", "text/html", Container.TEXT),
    FileKind(".htm", "web page", "text/html", Container.TEXT),
    FileKind(".md", "Markdown", "text/markdown", Container.TEXT),
    FileKind(".markdown", "Markdown", "text/markdown", Container.TEXT),
    FileKind(".txt", "plain text", "text/plain", Container.TEXT),
    FileKind(".eml", "e-mail message", "message/rfc822", Container.TEXT),
    FileKind(".zip", "ZIP archive", "application/zip", Container.ARCHIVE, magic=_ZIP),
    FileKind(".png", "PNG image", "image/png", Container.IMAGE, True, (b"\x89PNG\r\n\x1a\n",)),
    FileKind(".jpg", "JPEG image", "image/jpeg", Container.IMAGE, True, (b"\xff\xd8\xff",)),
    FileKind(".jpeg", "JPEG image", "image/jpeg", Container.IMAGE, True, (b"\xff\xd8\xff",)),
    FileKind(".tif", "TIFF image", "image/tiff", Container.IMAGE, True, (b"II*\x00", b"MM\x00*")),
    FileKind(".tiff", "TIFF image", "image/tiff", Container.IMAGE, True, (b"II*\x00", b"MM\x00*")),
]
SUPPORTED: dict[str, FileKind] = {kind.extension: kind for kind in _KINDS}

# Old binary Office files and encrypted OOXML files are OLE compound documents.
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
SNIFF_BYTES = 8192


def supported_types_text() -> str:
    return ", ".join(sorted(SUPPORTED))


def kind_for(filename: str) -> FileKind:
    """The kind named by the file's extension, or UnsupportedFileType with a clear message."""
    extension = PurePosixPath(filename).suffix.lower()
    kind = SUPPORTED.get(extension)
    if kind is None:
        raise UnsupportedFileType(
            f"{filename!r}: files of type {extension or '(no extension)'} are not supported; "
            f"supported types are {supported_types_text()}"
        )
    return kind


def check_content(filename: str, head: bytes) -> FileKind:
    """Refuse a file whose first bytes contradict its extension; return its kind.

    `head` is the start of the file (SNIFF_BYTES are enough). This is what stops an HTML page
    renamed to .png or an executable renamed to .pdf before anything parses it.
    """
    kind = kind_for(filename)
    if kind.container is Container.TEXT:
        if b"\x00" in head and not head.startswith(_UTF16_BOMS):
            raise ContentMismatch(f"{filename!r} is named as {kind.label} but contains binary data")
        return kind
    if kind.container is Container.PDF:
        # The PDF header may follow a little junk, which readers accept (ISO 32000 7.5.2).
        if b"%PDF-" not in head[:1024]:
            raise ContentMismatch(f"{filename!r} is named as a PDF but is not one")
        return kind
    if kind.container is Container.OOXML and head.startswith(_OLE_MAGIC):
        raise EncryptedFile(
            f"{filename!r} is password-protected or in the old binary Office format; remove "
            f"the password, or save it as {kind.extension}, and upload it again"
        )
    if not head.startswith(kind.magic):
        raise ContentMismatch(
            f"{filename!r} is named as {kind.label} but its content is something else"
        )
    return kind
