"""Department pages: department admins manage members, curators manage collections.

Who may do what comes from kb/accounts/access.py, as everywhere else: anything the user may
not manage is a 404 (so ids cannot be probed) plus an `access.denied` record. Changes are
ordinary save()/delete()/m2m calls, so the audit signals (kb/audit/signals.py) record each one
exactly once, with this request's actor, IP and request id; nothing here writes those records
a second time. The access filter is computed per request, so every change here applies from
the very next request.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext, gettext_noop
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from kb.accounts.access import (
    administered_departments,
    can_upload_to,
    curated_departments,
    readable_collection_ids,
)
from kb.accounts.forms import AddMemberForm, ChangeMemberForm, CollectionForm, clearance_label
from kb.accounts.models import Department, Membership
from kb.audit.trail import denied
from kb.library.models import Collection

# Short role names for tables ("Curator"); the model's labels explain more. Marked here,
# translated where they are used (gettext).
ROLE_NAMES: dict[str, str] = {
    Membership.Role.MEMBER: gettext_noop("Member"),
    Membership.Role.CURATOR: gettext_noop("Curator"),
    Membership.Role.DEPARTMENT_ADMIN: gettext_noop("Department admin"),
}
# The same in a sentence ("gus is now a curator of Finance"): lower case in English, and a
# separate message so that each language can word it as it needs.
ROLE_IN_SENTENCE: dict[str, str] = {
    Membership.Role.MEMBER: gettext_noop("member"),
    Membership.Role.CURATOR: gettext_noop("curator"),
    Membership.Role.DEPARTMENT_ADMIN: gettext_noop("department admin"),
}


def _role_name(role: str) -> str:
    return gettext(ROLE_NAMES[role]) if role in ROLE_NAMES else ""


def _user_id(request: HttpRequest) -> int:
    return int(request.user.pk or 0)


def _existing_department(department_id: int) -> int | None:
    return department_id if Department.objects.filter(pk=department_id).exists() else None


def _administered_or_404(request: HttpRequest, department_id: int) -> Department:
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


def _curated_or_404(request: HttpRequest, department_id: int) -> tuple[Department, Membership]:
    department = curated_departments(request.user).filter(pk=department_id).first()
    membership = (
        Membership.objects.filter(user_id=_user_id(request), department=department).first()
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


def _grant_cap(request: HttpRequest, department: Department) -> int | None:
    """The highest clearance this person may grant in the department: their own there, or no
    limit for a superadmin."""
    if getattr(request.user, "is_superuser", False):
        return None
    own = Membership.objects.filter(user_id=_user_id(request), department=department).first()
    return own.clearance if own is not None else 0


# --- the overview ----------------------------------------------------------------------------


@dataclass
class DepartmentRow:
    department: Department
    membership: Membership | None
    may_admin: bool
    may_curate: bool
    collections: list[Collection] = field(default_factory=list)

    @property
    def role_name(self) -> str:
        return _role_name(self.membership.role) if self.membership else ""


@login_required
@require_GET
def department_list(request: HttpRequest) -> HttpResponse:
    administered = set(administered_departments(request.user).values_list("pk", flat=True))
    curated = set(curated_departments(request.user).values_list("pk", flat=True))
    if not administered and not curated:
        denied(("page", "departments"), reason="neither department admin nor curator")
        raise Http404("No such page.")
    departments = Department.objects.filter(pk__in=administered | curated).annotate(
        member_count=Count("memberships", distinct=True),
        collection_count=Count("collections", distinct=True),
    )
    own = {m.department_id: m for m in Membership.objects.filter(user_id=_user_id(request))}
    # Only the collections the person manages are listed: a curator does not even see the
    # names of collections classified above their clearance.
    managed = Collection.objects.filter(
        department_id__in=curated, pk__in=readable_collection_ids(request.user)
    ).order_by("name")
    by_department: dict[int, list[Collection]] = {}
    for collection in managed:
        by_department.setdefault(collection.department_id, []).append(collection)
    rows = [
        DepartmentRow(
            department=d,
            membership=own.get(d.pk),
            may_admin=d.pk in administered,
            may_curate=d.pk in curated,
            collections=by_department.get(d.pk, []),
        )
        for d in departments
    ]
    return render(request, "accounts/departments.html", {"rows": rows})


# --- members ---------------------------------------------------------------------------------


def _render_members(
    request: HttpRequest,
    department: Department,
    cap: int | None,
    *,
    add_form: AddMemberForm | None = None,
    bound: ChangeMemberForm | None = None,
    status: int = 200,
) -> HttpResponse:
    memberships = (
        Membership.objects.filter(department=department)
        .select_related("user", "department")
        .order_by("user__username")
    )
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
            {"membership": membership, "form": form, "role_name": _role_name(membership.role)}
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
            "me": _user_id(request),
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def members(request: HttpRequest, department_id: int) -> HttpResponse:
    """The members of one department; a POST adds one."""
    department = _administered_or_404(request, department_id)
    cap = _grant_cap(request, department)
    if request.method != "POST":
        return _render_members(request, department, cap)
    form = AddMemberForm(request.POST, department=department, max_clearance=cap)
    if form.is_valid() and form.user is not None:
        try:
            with transaction.atomic():
                Membership.objects.create(
                    user_id=form.user.pk,
                    department=department,
                    role=form.cleaned_data["role"],
                    clearance=form.cleaned_data["clearance"],
                    source=Membership.Source.LOCAL,
                )
        except IntegrityError:
            # Someone else added them between the check and the insert.
            form.add_error("username", gettext("This person was just added by someone else."))
        else:
            name = form.cleaned_data["username"]
            messages.success(
                request,
                gettext(
                    "%(name)s is now a %(role)s of %(department)s, cleared to %(clearance)s. "
                    "They can read its collections from their next request."
                )
                % {
                    "name": name,
                    "role": gettext(ROLE_IN_SENTENCE[form.cleaned_data["role"]]),
                    "department": department.name,
                    "clearance": clearance_label(form.cleaned_data["clearance"]),
                },
            )
            return redirect("accounts:members", department_id=department.pk)
    messages.error(request, gettext("Nobody was added: %(error)s") % {"error": _first_error(form)})
    return _render_members(request, department, cap, add_form=form, status=400)


def _first_error(form: AddMemberForm | ChangeMemberForm) -> str:
    for errors in form.errors.values():
        for error in errors:
            return str(error)
    return gettext("the form is not valid.")


def _membership_or_404(
    request: HttpRequest, department: Department, membership_id: int
) -> Membership:
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


def _last_admin_problem(
    request: HttpRequest, membership: Membership, staying_admin: bool
) -> str | None:
    """Refuses to let a department admin remove or demote themselves when nobody else would
    be left to manage the department. Call inside a transaction: the admins' rows are
    locked, so two admins cannot both step down at the same moment."""
    if membership.user_id != _user_id(request) or staying_admin:
        return None
    if membership.role != Membership.Role.DEPARTMENT_ADMIN:
        return None
    admins = list(
        Membership.objects.select_for_update()
        .filter(department_id=membership.department_id, role=Membership.Role.DEPARTMENT_ADMIN)
        .values_list("pk", flat=True)
    )
    if admins != [membership.pk]:
        return None
    return gettext(
        "You are the last department admin of %(department)s: make someone else a department "
        "admin first, so that the department keeps someone to manage it."
    ) % {"department": membership.department.name}


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
    department = _administered_or_404(request, department_id)
    cap = _grant_cap(request, department)
    membership = _membership_or_404(request, department, membership_id)
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
    role, clearance = form.cleaned_data["role"], form.cleaned_data["clearance"]
    with transaction.atomic():
        problem = _last_admin_problem(
            request, membership, staying_admin=role == Membership.Role.DEPARTMENT_ADMIN
        )
        if problem is None and (role, clearance) != (membership.role, membership.clearance):
            membership.role, membership.clearance = role, clearance
            membership.save(update_fields=["role", "clearance"])
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
        elif problem is None:
            messages.info(request, gettext("Nothing changed for %(name)s.") % {"name": name})
    if problem is not None:
        form.add_error("role", problem)
        messages.error(request, problem)
        return _render_members(request, department, cap, bound=form, status=400)
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
    with transaction.atomic():
        problem = _last_admin_problem(request, membership, staying_admin=False)
        if problem is None:
            membership.delete()
    if problem is not None:
        messages.error(request, problem)
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


# --- collections -----------------------------------------------------------------------------


def _readers(collection: Collection) -> list[str]:
    """Who reads the collection, in words, as the access rule (kb/accounts/access.py) says."""
    level = collection.get_classification_display()
    if collection.visibility == Collection.Visibility.COMPANY:
        return [
            gettext("Everyone in the company whose highest clearance is %(level)s or above")
            % {"level": level}
        ]
    departments = [collection.department.name]
    if collection.visibility == Collection.Visibility.SHARED:
        departments += [d.name for d in collection.shared_with.all()]
    return [
        gettext("%(department)s members cleared to %(level)s or above")
        % {"department": name, "level": level}
        for name in departments
    ]


@login_required
@require_http_methods(["GET", "POST"])
def collection_new(request: HttpRequest, department_id: int) -> HttpResponse:
    department, membership = _curated_or_404(request, department_id)
    form = CollectionForm(
        request.POST or None, department=department, max_clearance=membership.clearance
    )
    if request.method == "POST":
        if form.is_valid():
            try:
                with transaction.atomic():
                    collection = form.save()
            except IntegrityError:
                form.add_error("name", gettext("A collection of that name was just created."))
            else:
                messages.success(
                    request,
                    gettext("Collection “%(name)s” created. Upload its documents here.")
                    % {"name": collection.name},
                )
                return redirect("portal:collection", collection_id=collection.pk)
        messages.error(request, gettext("The collection was not created: see the marked fields."))
    return render(
        request,
        "accounts/collection_form.html",
        {"department": department, "form": form, "collection": None, "readers": []},
        status=400 if form.is_bound else 200,
    )


@login_required
@require_http_methods(["GET", "POST"])
def collection_settings(
    request: HttpRequest, department_id: int, collection_id: int
) -> HttpResponse:
    department, membership = _curated_or_404(request, department_id)
    collection = (
        Collection.objects.select_related("department")
        .filter(pk=collection_id, department=department)
        .first()
    )
    if collection is None or not can_upload_to(request.user, collection):
        denied(
            ("collection", collection_id),
            reason="not a collection this curator manages",
            department=department,
            path=request.path[:200],
        )
        raise Http404("No such collection.")
    form = CollectionForm(
        request.POST or None,
        instance=collection,
        department=department,
        max_clearance=membership.clearance,
    )
    if request.method == "POST":
        if form.is_valid():
            try:
                with transaction.atomic():
                    collection = form.save()
            except IntegrityError:
                form.add_error("name", gettext("A collection of that name was just created."))
            else:
                if form.has_changed():
                    messages.success(
                        request,
                        gettext(
                            "Settings of “%(name)s” saved. They apply from the next request: "
                            "nothing needs re-indexing."
                        )
                        % {"name": collection.name},
                    )
                else:
                    messages.info(request, gettext("Nothing changed."))
                return redirect(
                    "accounts:collection_settings",
                    department_id=department.pk,
                    collection_id=collection.pk,
                )
        messages.error(request, gettext("The settings were not saved: see the marked fields."))
        collection.refresh_from_db()
    return render(
        request,
        "accounts/collection_form.html",
        {
            "department": department,
            "form": form,
            "collection": collection,
            "readers": _readers(collection),
        },
        status=400 if form.is_bound else 200,
    )
