"""A department admin's member pages: list and add members, change or remove one."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext
from django.views.decorators.http import require_http_methods, require_POST

from kb.accounts.access import administered_departments, curated_departments
from kb.accounts.forms import AddMemberForm, ChangeMemberForm, clearance_label
from kb.accounts.manage_views.gates import administered_or_404, membership_or_404, user_id
from kb.accounts.membership import (
    ROLE_IN_SENTENCE,
    LastAdminError,
    add_member,
    change_member,
    department_members,
    grant_cap,
    remove_member,
    role_name,
)
from kb.accounts.models import Department, Membership


def _render_members(
    request: HttpRequest,
    department: Department,
    cap: int | None,
    *,
    add_form: AddMemberForm | None = None,
    bound: ChangeMemberForm | None = None,
    status: int = 200,
) -> HttpResponse:
    memberships = department_members(department)
    rows = []
    for membership in memberships:
        form = None
        if membership.source == Membership.Source.LOCAL:
            form = (
                bound
                if bound is not None and bound.membership.pk == membership.pk
                else ChangeMemberForm(membership=membership, max_clearance=cap)
            )
        rows.append(
            {"membership": membership, "form": form, "role_name": role_name(membership.role)}
        )
    return render(
        request,
        "accounts/members.html",
        {
            "department": department,
            "rows": rows,
            "add_form": add_form
            if add_form is not None
            else AddMemberForm(department=department, max_clearance=cap),
            "cap_label": clearance_label(cap) if cap is not None else None,
            "directory_count": sum(
                1 for m in memberships if m.source == Membership.Source.DIRECTORY
            ),
            "me": user_id(request),
        },
        status=status,
    )


def _first_error(form: AddMemberForm | ChangeMemberForm) -> str:
    for errors in form.errors.values():
        for error in errors:
            return str(error)
    return gettext("the form is not valid.")


@login_required
@require_http_methods(["GET", "POST"])
def members(request: HttpRequest, department_id: int) -> HttpResponse:
    """The members of one department; a POST adds one."""
    department = administered_or_404(request, department_id)
    cap = grant_cap(request.user, department)
    if request.method != "POST":
        return _render_members(request, department, cap)
    form = AddMemberForm(request.POST, department=department, max_clearance=cap)
    if form.is_valid() and form.user is not None:
        role, clearance = form.cleaned_data["role"], form.cleaned_data["clearance"]
        if add_member(department, int(form.user.pk), role=role, clearance=clearance):
            messages.success(
                request,
                gettext(
                    "%(name)s is now a %(role)s of %(department)s, cleared to %(clearance)s. "
                    "They can read its collections from their next request."
                )
                % {
                    "name": form.cleaned_data["username"],
                    "role": gettext(ROLE_IN_SENTENCE[role]),
                    "department": department.name,
                    "clearance": clearance_label(clearance),
                },
            )
            return redirect("accounts:members", department_id=department.pk)
        form.add_error("username", gettext("This person was just added by someone else."))
    messages.error(request, gettext("Nobody was added: %(error)s") % {"error": _first_error(form)})
    return _render_members(request, department, cap, add_form=form, status=400)


def _after_own_change(request: HttpRequest, department: Department) -> HttpResponse:
    """Where to go after a change, which may have taken away the right to be here."""
    if administered_departments(request.user).filter(pk=department.pk).exists():
        return redirect("accounts:members", department_id=department.pk)
    if curated_departments(request.user).exists():
        return redirect("accounts:departments")
    return redirect("portal:ask")


def _local_membership(
    request: HttpRequest, department_id: int, membership_id: int, unchanged: str
) -> tuple[Department, int | None, Membership] | HttpResponse:
    """The membership a change or removal is about, with the grant cap; or the page that
    explains why it cannot be edited here (it comes from directory groups)."""
    department = administered_or_404(request, department_id)
    cap = grant_cap(request.user, department)
    membership = membership_or_404(department, membership_id)
    if membership.source == Membership.Source.DIRECTORY:
        name = membership.user.get_username()
        messages.error(
            request,
            gettext(
                "%(name)s's membership comes from directory groups and is re-synced at each "
                "sign-in: change the person's groups in the directory (or the group mapping) "
                "instead. %(unchanged)s"
            )
            % {"name": name, "unchanged": unchanged},
        )
        return _render_members(request, department, cap, status=400)
    return department, cap, membership


@login_required
@require_POST
def member_change(request: HttpRequest, department_id: int, membership_id: int) -> HttpResponse:
    target = _local_membership(
        request, department_id, membership_id, gettext("Nothing was changed.")
    )
    if isinstance(target, HttpResponse):
        return target
    department, cap, membership = target
    name = membership.user.get_username()
    form = ChangeMemberForm(request.POST, membership=membership, max_clearance=cap)
    if not form.is_valid():
        messages.error(
            request,
            gettext("%(name)s was not changed: %(error)s")
            % {"name": name, "error": _first_error(form)},
        )
        return _render_members(request, department, cap, bound=form, status=400)
    try:
        changed = change_member(
            user_id(request),
            membership,
            role=form.cleaned_data["role"],
            clearance=form.cleaned_data["clearance"],
        )
    except LastAdminError as refused:
        form.add_error("role", str(refused))
        messages.error(request, str(refused))
        return _render_members(request, department, cap, bound=form, status=400)
    if changed:
        messages.success(
            request,
            gettext(
                "%(name)s is now a %(role)s, cleared to %(clearance)s. This applies from "
                "their next request."
            )
            % {
                "name": name,
                "role": gettext(ROLE_IN_SENTENCE[membership.role]),
                "clearance": membership.get_clearance_display(),
            },
        )
    else:
        messages.info(request, gettext("Nothing changed for %(name)s.") % {"name": name})
    return _after_own_change(request, department)


@login_required
@require_POST
def member_remove(request: HttpRequest, department_id: int, membership_id: int) -> HttpResponse:
    target = _local_membership(
        request, department_id, membership_id, gettext("Nobody was removed.")
    )
    if isinstance(target, HttpResponse):
        return target
    department, cap, membership = target
    name = membership.user.get_username()
    try:
        remove_member(user_id(request), membership)
    except LastAdminError as refused:
        messages.error(request, str(refused))
        return _render_members(request, department, cap, status=400)
    messages.success(
        request,
        gettext(
            "%(name)s was removed from %(department)s. They lose access to its collections "
            "from their next request."
        )
        % {"name": name, "department": department.name},
    )
    return _after_own_change(request, department)
