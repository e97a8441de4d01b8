"""A curator's collection pages: create a collection, change its settings."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext
from django.views.decorators.http import require_http_methods

from kb.accounts.access import can_upload_to
from kb.accounts.departments import readers, save_collection
from kb.accounts.forms import CollectionForm
from kb.accounts.manage_views.gates import curated_or_404
from kb.audit.trail import denied
from kb.library.models import Collection


@login_required
@require_http_methods(["GET", "POST"])
def collection_new(request: HttpRequest, department_id: int) -> HttpResponse:
    department, membership = curated_or_404(request, department_id)
    form = CollectionForm(
        request.POST or None, department=department, max_clearance=membership.clearance
    )
    if request.method == "POST":
        collection = save_collection(form) if form.is_valid() else None
        if collection is not None:
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
    department, membership = curated_or_404(request, department_id)
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
        saved = save_collection(form) if form.is_valid() else None
        if saved is not None:
            if form.has_changed():
                messages.success(
                    request,
                    gettext(
                        "Settings of “%(name)s” saved. They apply from the next request: "
                        "nothing needs re-indexing."
                    )
                    % {"name": saved.name},
                )
            else:
                messages.info(request, gettext("Nothing changed."))
            return redirect(
                "accounts:collection_settings",
                department_id=department.pk,
                collection_id=saved.pk,
            )
        messages.error(request, gettext("The settings were not saved: see the marked fields."))
        # The form wrote the refused values onto the instance: show what is stored.
        collection.refresh_from_db()
    return render(
        request,
        "accounts/collection_form.html",
        {
            "department": department,
            "form": form,
            "collection": collection,
            "readers": readers(collection),
        },
        status=400 if form.is_bound else 200,
    )
