from __future__ import annotations

from django.http import HttpRequest

from kb.accounts.access import administered_departments, curated_departments, is_auditor


def roles(request: HttpRequest) -> dict[str, bool]:
    """What the navigation offers: the audit pages to auditors, the department pages to
    department admins and curators. Each page checks again; this only hides dead links."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"perms_auditor": False, "perms_manager": False, "perms_department_admin": False}
    # The same queries as before: the curator check only runs for non-admins.
    department_admin = administered_departments(user).exists()
    return {
        "perms_auditor": is_auditor(user),
        "perms_manager": department_admin or curated_departments(user).exists(),
        "perms_department_admin": department_admin,  # the usage report (kb/usage)
    }
