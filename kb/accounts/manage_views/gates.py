"""The doors of the department pages: a department (or membership) the person may not manage
is a 404, so ids cannot be probed, and the attempt is recorded as `access.denied`."""

from __future__ import annotations

from django.http import Http404, HttpRequest

from kb.accounts.access import administered_departments, curated_departments
from kb.accounts.models import Department, Membership
from kb.audit.trail import denied


def user_id(request: HttpRequest) -> int:
    return int(request.user.pk or 0)


def _existing_department(department_id: int) -> int | None:
    return department_id if Department.objects.filter(pk=department_id).exists() else None


def administered_or_404(request: HttpRequest, department_id: int) -> Department:
    department = administered_departments(request.user).filter(pk=department_id).first()
    if department is None:
        denied(
            ("department", department_id),
            reason="not a department admin",
            department=_existing_department(department_id),
            path=request.path[:200],
        )
        raise Http404("No such department.")
    return department


def curated_or_404(request: HttpRequest, department_id: int) -> tuple[Department, Membership]:
    department = curated_departments(request.user).filter(pk=department_id).first()
    membership = (
        Membership.objects.filter(user_id=user_id(request), department=department).first()
        if department is not None
        else None
    )
    if department is None or membership is None:
        denied(
            ("department", department_id),
            reason="not a curator or department admin",
            department=_existing_department(department_id),
            path=request.path[:200],
        )
        raise Http404("No such department.")
    return department, membership


def membership_or_404(department: Department, membership_id: int) -> Membership:
    membership = (
        Membership.objects.select_related("user", "department")
        .filter(pk=membership_id, department=department)
        .first()
    )
    if membership is None:
        denied(
            ("membership", membership_id),
            reason="not a membership of this department",
            department=department,
        )
        raise Http404("No such membership.")
    return membership
