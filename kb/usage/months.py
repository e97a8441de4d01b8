"""Calendar months in TIME_ZONE: what a quota, a report and a cost comparison cover."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from django.utils import timezone

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True)
class Month:
    first_day: date

    @property
    def label(self) -> str:
        return f"{self.first_day:%Y-%m}"

    @property
    def start(self) -> datetime:
        """Midnight of the first day, in TIME_ZONE (aware)."""
        return timezone.make_aware(datetime.combine(self.first_day, datetime.min.time()))

    @property
    def end(self) -> datetime:
        """The start of the next month: a report covers [start, end)."""
        return self.next().start

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def next(self) -> Month:
        year, month = self.first_day.year, self.first_day.month
        return Month(date(year + month // 12, month % 12 + 1, 1))

    def previous(self) -> Month:
        year, month = self.first_day.year, self.first_day.month
        return Month(date(year - (month == 1), (month - 2) % 12 + 1, 1))


def current_month() -> Month:
    now = timezone.localtime()
    return Month(date(now.year, now.month, 1))


def parse_month(value: str) -> Month:
    """`YYYY-MM`, or a ValueError that says what was wrong."""
    match = _MONTH.match(value.strip())
    if not match:
        raise ValueError(f"not a month in the form YYYY-MM: {value!r}")
    year, month = int(match[1]), int(match[2])
    if not 1 <= month <= 12 or year < 2000:
        raise ValueError(f"no such month: {value!r}")
    return Month(date(year, month, 1))
