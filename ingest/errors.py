"""Errors an admin can act on. Each carries a stable `code` (shown and filtered in the portal)
and a message that names the file and says what to do."""

from __future__ import annotations


class IngestError(Exception):
    """A file cannot be ingested. The message is meant for an admin, as is."""

    code = "ingest_error"


class UnsupportedFileType(IngestError):
    code = "unsupported_type"


class ContentMismatch(IngestError):
    """The bytes are not what the extension says (a renamed or disguised file)."""

    code = "content_mismatch"


class EncryptedFile(IngestError):
    code = "encrypted"


class ParseError(IngestError):
    """The file could not be turned into text."""

    code = "parse_error"


class NoTextFound(ParseError):
    code = "no_text"


class UnsafeFile(IngestError):
    """The file looks like an attack on the parser (zip bomb, XML entities, pixel bomb)."""

    code = "unsafe_file"


class TooLarge(IngestError):
    """Over one of the configured size limits (pages, entries, pixels)."""

    code = "too_large"


class ParseMemoryLimit(TooLarge):
    code = "memory_limit"


class ParseTimeout(IngestError):
    code = "parse_timeout"


class ParserCrashed(IngestError):
    """The isolated parser process died (memory limit, or a crash inside a native library)."""

    code = "parser_crashed"


def error_from_code(code: str, message: str) -> IngestError:
    """Rebuild an error that crossed a process boundary as plain data."""
    for cls in _all_subclasses(IngestError):
        if cls.code == code:
            return cls(message)
    error = IngestError(message)
    error.code = code
    return error


def _all_subclasses(cls: type[IngestError]) -> list[type[IngestError]]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found
