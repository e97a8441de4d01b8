from __future__ import annotations

from django.http import HttpRequest

from kb.accounts.access import is_auditor


def roles(request: HttpRequest) -> dict[str, bool]:
    """Company-wide roles the navigation needs (department roles are checked per page)."""
    user = getattr(request, "user", None)
    return {"perms_auditor": user is not None and is_auditor(user)}
