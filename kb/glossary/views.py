"""The glossary pages: every member of a department reads (and exports) its glossary; its
curators and department admins edit it and import CSV files.

As on the department pages (kb/accounts/manage_views/), a department the person may not
read or edit is a 404 plus an `access.denied` record, so ids cannot be probed. Changes are
ordinary save()/delete() calls: the signals in kb/glossary/signals.py audit each one. The
views only read the request and render: searching and saving live in kb/glossary/editing.py,
CSV export and import in kb/glossary/transfer.py.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import IntegrityError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from kb.accounts.models import Department, Membership
from kb.audit.trail import denied
from kb.glossary.editing import (
    clean_query,
    entries_page,
    entry_count,
    glossaries_of,
    save_entry,
)
from kb.glossary.forms import EntryForm, ImportForm
from kb.glossary.models import GlossaryEntry
from kb.glossary.transfer import ImportRejected, decode, export_glossary, import_csv, plan


def _user_id(request: HttpRequest) -> int:
    return int(request.user.pk or 0)


def _membership_or_404(request: HttpRequest, department_id: int, *, edit: bool) -> Membership:
    membership = (
        Membership.objects.select_related("department")
        .filter(user_id=_user_id(request), department_id=department_id)
        .first()
    )
    if membership is None or (edit and not membership.can_curate):
        denied(
            ("glossary", department_id),
            reason="not a curator or department admin" if edit else "not a member",
            department=department_id
            if Department.objects.filter(pk=department_id).exists()
            else None,
            path=request.path[:200],
        )
        raise Http404("No such glossary.")
    return membership


def _entry_or_404(request: HttpRequest, department: Department, entry_id: int) -> GlossaryEntry:
    entry = GlossaryEntry.objects.filter(pk=entry_id, department=department).first()
    if entry is None:
        denied(
            ("glossaryentry", entry_id),
            reason="not an entry of this glossary",
            department=department,
            path=request.path[:200],
        )
        raise Http404("No such entry.")
    return entry


@login_required
@require_GET
def glossary_list(request: HttpRequest) -> HttpResponse:
    """The glossaries of the person's departments; straight to it when there is one."""
    memberships = glossaries_of(_user_id(request))
    # Nobody without a membership is refused: the page then says that no glossary applies.
    if len(memberships) == 1:
        return redirect("glossary:entries", department_id=memberships[0].department_id)
    return render(request, "glossary/index.html", {"memberships": memberships})


def _render_entries(
    request: HttpRequest,
    membership: Membership,
    *,
    form: EntryForm | None = None,
    status: int = 200,
) -> HttpResponse:
    department = membership.department
    query = clean_query(request.GET.get("q", ""))
    page = entries_page(department, query, request.GET.get("page"))
    may_edit = membership.can_curate
    return render(
        request,
        "glossary/entries.html",
        {
            "department": department,
            "page": page,
            "query": query,
            "total": entry_count(department),
            "may_edit": may_edit,
            "form": form
            if form is not None
            else (EntryForm(department=department) if may_edit else None),
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def entries(request: HttpRequest, department_id: int) -> HttpResponse:
    """The department's glossary, searchable; a POST adds an entry."""
    membership = _membership_or_404(request, department_id, edit=request.method == "POST")
    if request.method != "POST":
        return _render_entries(request, membership)
    department = membership.department
    form = EntryForm(request.POST, department=department)
    if form.is_valid():
        entry = save_entry(form, _user_id(request))
        if entry is not None:
            messages.success(
                request,
                gettext("“%(term)s” was added to %(department)s's glossary.")
                % {"term": entry.term, "department": department.name},
            )
            return redirect("glossary:entries", department_id=department.pk)
    messages.error(request, gettext("Nothing was added: see the marked fields."))
    return _render_entries(request, membership, form=form, status=400)


@login_required
@require_http_methods(["GET", "POST"])
def entry_edit(request: HttpRequest, department_id: int, entry_id: int) -> HttpResponse:
    membership = _membership_or_404(request, department_id, edit=True)
    department = membership.department
    entry = _entry_or_404(request, department, entry_id)
    form = EntryForm(request.POST or None, instance=entry, department=department)
    if request.method == "POST":
        # The form edits `entry` itself: after the save it holds the new values.
        if form.is_valid() and save_entry(form, _user_id(request)) is not None:
            if form.has_changed():
                messages.success(request, gettext("“%(term)s” was saved.") % {"term": entry.term})
            else:
                messages.info(request, gettext("Nothing changed."))
            return redirect("glossary:entries", department_id=department.pk)
        messages.error(request, gettext("The entry was not saved: see the marked fields."))
    return render(
        request,
        "glossary/entry_form.html",
        {"department": department, "form": form, "entry": entry},
        status=400 if form.is_bound else 200,
    )


@login_required
@require_POST
def entry_delete(request: HttpRequest, department_id: int, entry_id: int) -> HttpResponse:
    membership = _membership_or_404(request, department_id, edit=True)
    entry = _entry_or_404(request, membership.department, entry_id)
    term = entry.term
    entry.delete()
    messages.success(request, gettext("“%(term)s” was deleted.") % {"term": term})
    return redirect("glossary:entries", department_id=department_id)


@login_required
@require_GET
def export(request: HttpRequest, department_id: int) -> HttpResponse:
    membership = _membership_or_404(request, department_id, edit=False)
    department = membership.department
    exported = export_glossary(department)
    response = HttpResponse(exported.content, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{exported.name}"'
    return response


@login_required
@require_http_methods(["GET", "POST"])
def import_file(request: HttpRequest, department_id: int) -> HttpResponse:
    """Upload a CSV file: the page shows what it would change, nothing is saved yet."""
    membership = _membership_or_404(request, department_id, edit=True)
    department = membership.department
    form = ImportForm(request.POST or None, request.FILES or None)
    context: dict[str, object] = {"department": department, "form": form}
    if request.method == "POST":
        if form.is_valid():
            try:
                text = decode(form.cleaned_data["file"])
                context.update(plan=plan(department, text), text=text, file_name=form.file_name)
                return render(request, "glossary/import.html", context)
            except ImportRejected as rejected:
                context["errors"] = rejected.errors
        messages.error(request, gettext("Nothing was imported: see the problems below."))
    return render(request, "glossary/import.html", context, status=400 if form.is_bound else 200)


@login_required
@require_POST
def import_confirm(request: HttpRequest, department_id: int) -> HttpResponse:
    """Save the previewed file: all rows in one transaction, or none."""
    membership = _membership_or_404(request, department_id, edit=True)
    department = membership.department
    text = request.POST.get("text", "")
    try:
        result = import_csv(department, text, user_id=_user_id(request))
    except ImportRejected as rejected:
        errors = rejected.errors
    except IntegrityError:
        errors = [gettext("Someone changed the glossary at the same time: import the file again.")]
    else:
        messages.success(
            request,
            gettext(
                "Imported into %(department)s's glossary: %(created)s new, %(updated)s updated, "
                "%(unchanged)s unchanged."
            )
            % {
                "department": department.name,
                "created": result.created,
                "updated": result.updated,
                "unchanged": result.unchanged,
            },
        )
        return redirect("glossary:entries", department_id=department.pk)
    messages.error(request, gettext("Nothing was imported: see the problems below."))
    return render(
        request,
        "glossary/import.html",
        {"department": department, "form": ImportForm(), "errors": errors},
        status=400,
    )
