"""The overview: the departments the person administers or curates."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from kb.accounts.departments import managed_departments
from kb.audit.trail import denied


@login_required
@require_GET
def department_list(request: HttpRequest) -> HttpResponse:
    rows = managed_departments(request.user)
    if not rows:
        denied(("page", "departments"), reason="neither department admin nor curator")
        raise Http404("No such page.")
    return render(request, "accounts/departments.html", {"rows": rows})
