"""The admins' models page: what answers questions, which index generations serve, and which
model versions produced the answers."""

from __future__ import annotations

import contextlib

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Max, Min
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from ingest.index import MissingCollection
from kb.answering.models import Turn
from kb.audit.trail import denied
from kb.library.components import get_index
from kb.library.models import IndexGeneration
from kb.routing.clients import describe_chat_model
from kb.routing.vllm import vllm_command


@login_required
@require_GET
def configured_models(request: HttpRequest) -> HttpResponse:
    """For admins: which models are configured and which produced the answers, by version."""
    if not request.user.is_superuser:
        denied(("page", "models"), reason="not a superadmin")
        raise Http404("No such page.")
    generations = list(IndexGeneration.objects.exclude(state=IndexGeneration.State.RETIRED))
    index = get_index()
    for generation in generations:
        # Counted now: the stored count is the one taken when the generation went live.
        with contextlib.suppress(MissingCollection):
            generation.point_count = index.count(generation.collection_name)
    answered_by = (
        Turn.objects.exclude(model="")
        .values("model", "model_version")
        .annotate(answers=Count("id"), first=Min("created_at"), last=Max("created_at"))
        .order_by("-last")
    )
    return render(
        request,
        "portal/models.html",
        {
            "llm": describe_chat_model(),
            "generations": generations,
            "answered_by": answered_by,
            "vllm_command": " ".join(vllm_command("0.0.0.0", 8001)),  # noqa: S104
        },
    )
