"""Usage pages: the monthly report per department, its CSV, the quota form and the cost page.

Department admins see the departments they administer; auditors and superadmins see all.
Anything else is a 404 (so department names cannot be probed) and an `access.denied`
record. A report names people and how much they asked, so each view and export is itself an
audit record. Quotas are changed by superadmins (here or in the admin site); the change is
recorded by the model signal (kb/usage/signals.py).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_POST

from kb.accounts.access import administered_departments, is_auditor
from kb.accounts.models import Department
from kb.audit.trail import denied, record
from kb.usage import cost as cost_module
from kb.usage.models import DepartmentQuota
from kb.usage.months import Month, current_month, parse_month
from kb.usage.report import department_report, overview, report_rows, to_csv


def visible_departments(user: Any) -> QuerySet[Department]:
    if is_auditor(user):  # auditors and superadmins
        return Department.objects.all()
    return administered_departments(user)


class QuotaForm(forms.ModelForm):  # type: ignore[type-arg]  # ModelForm[...] needs django-stubs-ext's runtime patch
    class Meta:
        model = DepartmentQuota
        fields = ["soft_limit_tokens", "hard_limit_tokens"]
        widgets = {
            "soft_limit_tokens": forms.NumberInput(attrs={"min": 0}),
            "hard_limit_tokens": forms.NumberInput(attrs={"min": 0}),
        }


def _month(request: HttpRequest) -> tuple[Month, str]:
    """The month asked for (default: this one) and an error to show if it was not one."""
    value = request.GET.get("month", "").strip()
    if not value:
        return current_month(), ""
    try:
        return parse_month(value), ""
    except ValueError:
        return current_month(), gettext(
            "“%(value)s” is not a month (YYYY-MM); showing %(month)s."
        ) % {
            "value": value[:20],
            "month": current_month().label,
        }


def _refuse(
    request: HttpRequest, target: Any, reason: str, department: int | None = None
) -> Http404:
    denied(target, reason=reason, department=department, path=request.path[:200])
    return Http404("Not found.")


def _department_or_404(request: HttpRequest, slug: str) -> Department:
    department = visible_departments(request.user).filter(slug=slug).first()
    if department is None:
        existing = Department.objects.filter(slug=slug).values_list("pk", flat=True).first()
        raise _refuse(
            request, ("department", existing or slug[:60]), "may not see its usage", existing
        )
    return department


@login_required
@require_GET
def report_index(request: HttpRequest) -> HttpResponse:
    departments = list(visible_departments(request.user))
    if not departments:
        raise _refuse(request, ("usage", "report"), "not a department admin or auditor")
    month, error = _month(request)
    reports = overview(departments, month)
    record("usage.viewed", target=("usage", "report"), details={"month": month.label})
    return render(
        request,
        "usage/report.html",
        {
            "month": month,
            "error": error,
            "reports": reports,
            "may_see_cost": is_auditor(request.user),
        },
        status=400 if error else 200,
    )


@login_required
@require_GET
def department_detail(request: HttpRequest, slug: str) -> HttpResponse:
    department = _department_or_404(request, slug)
    month, error = _month(request)
    report = department_report(department, month)
    record(
        "usage.viewed",
        target=("department", department.pk),
        department=department,
        details={"month": month.label},
    )
    quota = DepartmentQuota.objects.filter(department=department).first()
    return render(
        request,
        "usage/department.html",
        {
            "month": month,
            "error": error,
            "report": report,
            "quota_form": (QuotaForm(instance=quota) if request.user.is_superuser else None),
        },
        status=400 if error else 200,
    )


@login_required
@require_GET
def report_csv(request: HttpRequest) -> HttpResponse:
    """All visible departments, or one (`?department=slug`), for one month."""
    slug = request.GET.get("department", "").strip()
    if slug:
        departments = [_department_or_404(request, slug)]
    else:
        departments = list(visible_departments(request.user))
        if not departments:
            raise _refuse(request, ("usage", "report"), "not a department admin or auditor")
    month, error = _month(request)
    if error:
        return HttpResponse(error, status=400, content_type="text/plain; charset=utf-8")
    reports = [department_report(d, month) for d in departments]
    record(
        "usage.exported",
        target=("usage", "report"),
        department=departments[0] if len(departments) == 1 else None,
        details={"month": month.label, "departments": [d.slug for d in departments]},
    )
    response = HttpResponse(to_csv(report_rows(reports)), content_type="text/csv; charset=utf-8")
    name = f"usage-{month.label}" + (f"-{slug}" if slug else "")
    response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    return response


@login_required
@require_POST
def quota_edit(request: HttpRequest, slug: str) -> HttpResponse:
    if not request.user.is_superuser:
        existing = Department.objects.filter(slug=slug).values_list("pk", flat=True).first()
        raise _refuse(request, ("department", existing or slug[:60]), "not a superadmin", existing)
    department = _department_or_404(request, slug)
    quota = DepartmentQuota.objects.filter(department=department).first()
    form = QuotaForm(request.POST, instance=quota or DepartmentQuota(department=department))
    if form.is_valid():
        form.save()
        messages.success(
            request, gettext("The quota of %(department)s was saved.") % {"department": department}
        )
        return redirect("usage:department", slug=department.slug)
    month = current_month()
    return render(
        request,
        "usage/department.html",
        {
            "month": month,
            "error": "",
            "report": department_report(department, month),
            "quota_form": form,
        },
        status=400,
    )


@login_required
@require_GET
def cost(request: HttpRequest) -> HttpResponse:
    if not is_auditor(request.user):
        raise _refuse(request, ("usage", "cost"), "not an auditor or superadmin")
    month, error = _month(request)
    comparison = cost_module.compare(month)
    record("usage.viewed", target=("usage", "cost"), details={"month": month.label})
    return render(
        request,
        "usage/cost.html",
        {"month": month, "error": error, "c": comparison, "i": comparison.inputs},
        status=400 if error else 200,
    )
