"""Uploaded file names too long to keep whole are refused, never cut.

Django cuts an uploaded file's name to 255 characters before any view sees it
(`UploadedFile._set_name`). Two different files whose names share their first 255 characters
would then arrive under one name, and the second would become a new version of the first:
one document's text silently replaced by another's. This handler sees each name as sent,
before the cut, and notes the ones over the limit; `refuse_overlong_names` (called by the
portal's and the API's upload views alike) turns them into a 400 that states the limit.
"""

from __future__ import annotations

from typing import Any

from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpRequest

from kb.library.models import Collection
from kb.library.services import UploadRejected, audit_upload_refusal

# Django's own cut, and most file systems' limit on one name.
MAX_UPLOAD_NAME_CHARS = 255
_NOTED = "_kb_overlong_upload_names"


class UploadNameGuard(FileUploadHandler):
    """First in FILE_UPLOAD_HANDLERS: notes overlong names, leaves the data to the others."""

    def new_file(self, field_name: str, file_name: str, *args: Any, **kwargs: Any) -> None:
        super().new_file(field_name, file_name, *args, **kwargs)
        if len(file_name) > MAX_UPLOAD_NAME_CHARS and self.request is not None:
            noted = getattr(self.request, _NOTED, [])
            noted.append(file_name)
            setattr(self.request, _NOTED, noted)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        return raw_data  # for the next handler

    def file_complete(self, file_size: int) -> None:
        return None  # the next handler builds the file


def refuse_overlong_names(request: Any, collection: Collection) -> None:
    """Raise UploadRejected (400, `name_too_long`) if any file of this request had a name
    over MAX_UPLOAD_NAME_CHARS, audited like every other refused upload. `request`: Django's,
    or DRF's wrapping it."""
    django_request: HttpRequest = getattr(request, "_request", request)
    noted: list[str] = getattr(django_request, _NOTED, [])
    if noted:
        refusal = UploadRejected(
            f"the file name {noted[0][:80]!r}… is {len(noted[0])} characters long; the limit "
            f"is {MAX_UPLOAD_NAME_CHARS}: rename the file and upload it again",
            400,
            "name_too_long",
        )
        audit_upload_refusal(collection, noted[0], [(name, str(refusal)) for name in noted])
        raise refusal
