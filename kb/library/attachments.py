"""How an original file is handed out: one Content-Disposition for the portal and the API."""

from __future__ import annotations

import re
import unicodedata
from typing import IO
from urllib.parse import quote

from django.http import FileResponse

_UNSAFE_ASCII = re.compile(r"[^A-Za-z0-9._-]+")


def content_disposition(name: str) -> str:
    """`attachment` with the name twice (RFC 6266): `filename*` carries it exactly,
    percent-encoded UTF-8 (RFC 8187), for every current browser; `filename` a fallback of
    letters, digits, dots, dashes and underscores only, so no quote, angle bracket or
    control character of an uploaded name ever reaches a header as it was typed."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    fallback = _UNSAFE_ASCII.sub("_", ascii_name).strip("._") or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def attachment(stream: IO[bytes], name: str) -> FileResponse:
    """The file as a download with a generic type, so an uploaded HTML or SVG file can never
    run in the portal's origin (SecurityMiddleware adds X-Content-Type-Options: nosniff)."""
    response = FileResponse(stream, content_type="application/octet-stream")
    response["Content-Disposition"] = content_disposition(name)
    return response
