"""What an action refuses, for each door to say in its own way: the portal as a page or 404,
the REST API as problem details. The action has already written the audit record."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied


class Refused(PermissionDenied):
    """An action was refused; `str(exc)` is the reason, in English, fit to show. A refusal
    no door translated is still a refusal (Django answers 403), never a server error."""


class NotReadable(Refused):
    """Not found, or not readable by this reader: the same answer (404), so ids cannot be
    probed."""


class Forbidden(Refused):
    """Readable, but this act is not allowed (403), e.g. downloading where downloads are off."""


class InvalidInput(Refused):
    """A parameter the action cannot use (400); `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
