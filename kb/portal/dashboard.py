"""The operations dashboard: how the knowledge base is used and how well it answers.

For superadmins and auditors (company-wide roles). Everything is aggregated in the database
over a fixed window, so the page costs the same few queries however busy the installation
is; charts are SVG drawn on the server (no chart library, nothing loaded from elsewhere).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from kb.accounts.access import is_auditor
from kb.answering.models import Feedback, Turn
from kb.audit.models import AuditRecord
from kb.audit.trail import denied
from kb.library.models import DocumentVersion

WINDOW_DAYS = 30
CHART_WIDTH, CHART_HEIGHT = 600, 160


@dataclass
class Segment:
    y: float
    height: float
    series: int  # which department: its colour and legend entry
    value: float


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: float
    segments: list[Segment] = field(default_factory=list)


@dataclass
class Chart:
    """Bars (one per day) ready to draw in an SVG viewBox of CHART_WIDTH x CHART_HEIGHT."""

    title: str
    unit: str
    bars: list[Bar] = field(default_factory=list)
    maximum: float = 0.0
    total: float = 0.0
    legend: list[tuple[str, int]] = field(default_factory=list)  # (series, colour) if stacked

    @property
    def width(self) -> int:
        return CHART_WIDTH

    @property
    def height(self) -> int:
        return CHART_HEIGHT


def _days(today: date) -> list[date]:
    return [today - timedelta(days=n) for n in range(WINDOW_DAYS - 1, -1, -1)]


def _chart(title: str, unit: str, days: list[date], values: dict[date, float]) -> Chart:
    maximum = max(values.values(), default=0.0)
    chart = Chart(title=title, unit=unit, maximum=maximum, total=sum(values.values()))
    slot = CHART_WIDTH / len(days)
    for index, day in enumerate(days):
        value = values.get(day, 0.0)
        height = 0.0 if maximum <= 0 else (CHART_HEIGHT - 10) * value / maximum
        chart.bars.append(
            Bar(
                x=index * slot + 1,
                y=CHART_HEIGHT - height,
                width=max(slot - 2, 1),
                height=height,
                label=day.isoformat(),
                value=round(value, 2),
            )
        )
    return chart


SERIES_COLOURS = 6  # static/kb.css .series-0 ... .series-5


def _stacked_chart(
    title: str, unit: str, days: list[date], values: dict[date, dict[str, float]]
) -> Chart:
    """One bar a day, split into one segment per series (department), largest series first."""
    totals = {day: sum(parts.values()) for day, parts in values.items()}
    chart = _chart(title, unit, days, totals)
    per_series: dict[str, float] = {}
    for parts in values.values():
        for name, value in parts.items():
            per_series[name] = per_series.get(name, 0.0) + value
    names = sorted(per_series, key=lambda name: -per_series[name])
    order = {name: index for index, name in enumerate(names)}
    chart.legend = [(name, order[name] % SERIES_COLOURS) for name in names]
    for bar, day in zip(chart.bars, days, strict=True):
        top = float(CHART_HEIGHT)
        for name in names:
            value = values.get(day, {}).get(name, 0.0)
            if not value or not chart.maximum:
                continue
            height = (CHART_HEIGHT - 10) * value / chart.maximum
            top -= height
            bar.segments.append(Segment(top, height, order[name] % SERIES_COLOURS, value))
    return chart


def _p95_by_day(since: date) -> dict[date, float]:
    turns = Turn.objects.filter(created_at__date__gte=since)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT created_at::date, percentile_cont(0.95) WITHIN GROUP (ORDER BY seconds)"
                " FROM portal_turn WHERE created_at::date >= %s GROUP BY 1",
                [since],
            )
            return {day: float(value) for day, value in cursor.fetchall()}
    by_day: dict[date, list[float]] = {}
    for created, seconds in turns.values_list("created_at", "seconds"):
        by_day.setdefault(created.date(), []).append(seconds)
    result = {}
    for day, values in by_day.items():
        values.sort()
        result[day] = values[max(0, math.ceil(0.95 * len(values)) - 1)]
    return result


def dashboard_data() -> dict[str, object]:
    today = timezone.now().date()
    days = _days(today)
    since = days[0]
    questions = (
        AuditRecord.objects.filter(action="question.asked", at__date__gte=since)
        .annotate(day=TruncDate("at"))
        .values("day", "department")
        .annotate(n=Count("seq"))
    )
    per_day: dict[date, dict[str, float]] = {}
    per_department: dict[str, int] = {}
    for row in questions:
        name = row["department"] or "—"
        day = per_day.setdefault(row["day"], {})
        day[name] = day.get(name, 0) + row["n"]
        per_department[name] = per_department.get(name, 0) + row["n"]
    tokens = (
        Turn.objects.filter(created_at__date__gte=since)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(n=Sum("prompt_tokens") + Sum("completion_tokens"), answers=Count("pk"))
    )
    answers_per_day = {row["day"]: row["answers"] for row in tokens}
    feedback = (
        Feedback.objects.filter(created_at__date__gte=since)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(negative=Count("pk", filter=Q(rating=-1)))
    )
    # Share of all answers given that day which their asker rated "not helpful".
    negative_share = {
        row["day"]: 100.0 * row["negative"] / answers_per_day[row["day"]]
        for row in feedback
        if answers_per_day.get(row["day"])
    }
    labels = dict(DocumentVersion.Status.choices)
    backlog = [
        (status, labels.get(status, status), n)
        for status, n in DocumentVersion.objects.exclude(status=DocumentVersion.Status.SUPERSEDED)
        .values_list("status")
        .annotate(n=Count("pk"))
        .values_list("status", "n")
        .order_by("status")
    ]
    failures = (
        DocumentVersion.objects.filter(
            status__in=[DocumentVersion.Status.FAILED, DocumentVersion.Status.QUARANTINED],
            created_at__date__gte=since,
        )
        .values("error_code")
        .annotate(n=Count("pk"))
        .order_by("-n")[:10]
    )
    return {
        "window_days": WINDOW_DAYS,
        "questions": _stacked_chart(
            _("Questions per day, by department"), _("questions"), days, per_day
        ),
        "by_department": sorted(per_department.items(), key=lambda item: -item[1]),
        "tokens": _chart(
            _("Model tokens per day"),
            _("tokens"),
            days,
            {r["day"]: float(r["n"] or 0) for r in tokens},
        ),
        "latency": _chart(_("p95 answer time per day"), "s", days, _p95_by_day(since)),
        "negative": _chart(_("Answers rated not helpful"), "%", days, negative_share),
        "backlog": backlog,
        "failures": list(failures),
    }


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    if not is_auditor(request.user):
        denied(("page", "dashboard"), reason="not an auditor or superadmin")
        raise Http404("No such page.")
    data = dashboard_data()
    data["charts"] = [data["questions"], data["tokens"], data["latency"], data["negative"]]
    return render(request, "portal/dashboard.html", data)
