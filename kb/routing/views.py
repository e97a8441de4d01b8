"""The routing policy as superadmins see it: read-only (it is edited in the admin site)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from kb.accounts.models import Clearance
from kb.audit.models import AuditRecord
from kb.audit.trail import denied
from kb.routing.clients import describe_chat_model
from kb.routing.models import ModelEndpoint
from kb.routing.policy import CONFIGURED, ON_PREMISES, _ceiling

DECISION_DAYS = 30
DECISION_LIMIT = 10000


def _label(choices: Any, key: object) -> str:
    """The reader's-language label of a value stored in an audit record (by value or name)."""
    for member in choices:
        if key in (member.value, member.name):
            return str(member.label)
    return str(key or "")


@login_required
@require_GET
def policy(request: HttpRequest) -> HttpResponse:
    if not request.user.is_superuser:
        denied(("page", "routing"), reason="not a superadmin")
        raise Http404("No such page.")
    endpoints = list(ModelEndpoint.objects.order_by("preference", "name", "pk"))
    for row in endpoints:
        # What the decision actually allows, which for an external endpoint is never above
        # public and nothing at all while the operator's switch is off.
        row.effective = (  # type: ignore[attr-defined]  # computed for the template only, not a model field
            Clearance(_ceiling(row)).label
            if row.location == ON_PREMISES or settings.LLM_EXTERNAL_ALLOWED
            else None
        )
    # Counts only: who asked what stays in the audit trail, for auditors.
    since = timezone.now() - timedelta(days=DECISION_DAYS)
    # The details are stored as canonical JSON text (hashed into the chain), so they are
    # counted here, over the latest decisions only.
    counts: Counter[tuple[str, str, str, str]] = Counter()
    latest = (
        AuditRecord.objects.filter(action="llm.routed", at__gte=since)
        .order_by("-seq")
        .values_list("details_json", "outcome")[:DECISION_LIMIT]
    )
    for details_json, outcome in latest:
        details = json.loads(details_json or "{}")
        counts[
            (
                str(details.get("endpoint", "")),
                str(details.get("location", "")),
                str(details.get("classification", "")),
                outcome,
            )
        ] += 1
    return render(
        request,
        "routing/policy.html",
        {
            "configured": describe_chat_model(),
            "configured_name": CONFIGURED,
            "endpoints": endpoints,
            "external_allowed": settings.LLM_EXTERNAL_ALLOWED,
            "decisions": [
                {
                    "endpoint": endpoint,
                    "location": _label(ModelEndpoint.Location, location),
                    "classification": _label(Clearance, level.upper()),
                    "outcome": _label(AuditRecord.Outcome, outcome),
                    "count": count,
                }
                for (endpoint, location, level, outcome), count in counts.most_common()
            ],
            "limit": DECISION_LIMIT,
            "days": DECISION_DAYS,
        },
    )
