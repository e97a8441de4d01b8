"""Monthly token quotas per department: where a department stands, and what the asker is told.

Checked before the model is called, against the tokens metered so far this month; answers
already in flight when the line is crossed still finish, so a month can end slightly above a
hard limit. The notices are stored with the answer in English (like the service's other
fixed texts) and shown in the reader's language by `localized_notice`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils.translation import gettext, gettext_noop

from kb.audit.trail import record
from kb.usage.models import DepartmentQuota, QuotaEvent, UsageRecord
from kb.usage.months import Month, current_month

NOTICE_HARD = gettext_noop(
    "%(department)s has used its monthly limit of %(limit)s tokens; until the quota resets "
    "on %(resets)s, answers are the most relevant passages."
)
NOTICE_SOFT = gettext_noop(
    "%(department)s has passed its soft monthly limit of %(limit)s tokens (%(used)s used); "
    "the quota resets on %(resets)s."
)
NOTICES = (NOTICE_HARD, NOTICE_SOFT)


@dataclass(frozen=True)
class QuotaState:
    month: Month
    used: int
    soft_limit: int | None
    hard_limit: int | None

    @property
    def level(self) -> str:
        """ "hard", "soft" or "" (within the quota, or no quota)."""
        if self.hard_limit is not None and self.used >= self.hard_limit:
            return QuotaEvent.Level.HARD
        if self.soft_limit is not None and self.used >= self.soft_limit:
            return QuotaEvent.Level.SOFT
        return ""

    @property
    def resets(self) -> str:
        return self.month.next().first_day.isoformat()


def tokens_used(department_id: int, month: Month) -> int:
    totals = UsageRecord.objects.filter(
        department_id=department_id, created_at__gte=month.start, created_at__lt=month.end
    ).aggregate(prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"))
    return int(totals["prompt"] or 0) + int(totals["completion"] or 0)


def quota_state(department_id: int, month: Month | None = None) -> QuotaState:
    month = month or current_month()
    quota = DepartmentQuota.objects.filter(department_id=department_id).first()
    soft = quota.soft_limit_tokens if quota else None
    hard = quota.hard_limit_tokens if quota else None
    # No limit: nothing to add up (the common case costs one query).
    used = tokens_used(department_id, month) if soft is not None or hard is not None else 0
    return QuotaState(month, used, soft, hard)


def notice_for(state: QuotaState, department_name: str) -> str:
    """The English notice for an answer (empty within the quota)."""
    level = state.level
    if not level:
        return ""
    limit = state.hard_limit if level == QuotaEvent.Level.HARD else state.soft_limit
    template = NOTICE_HARD if level == QuotaEvent.Level.HARD else NOTICE_SOFT
    return template % {
        "department": department_name,
        "limit": f"{limit:,}",
        "used": f"{state.used:,}",
        "resets": state.resets,
    }


def note_reached(state: QuotaState, department_id: int, user: object) -> None:
    """The first answer of the month past a level leaves one audit record of it."""
    level = state.level
    if not level:
        return
    try:
        with transaction.atomic():
            QuotaEvent.objects.create(
                department_id=department_id, month=state.month.first_day, level=level
            )
            record(
                f"usage.{level}_quota_reached",
                actor=user,
                target=("department", department_id),
                department=department_id,
                details={
                    "month": state.month.label,
                    "used_tokens": state.used,
                    "soft_limit_tokens": state.soft_limit,
                    "hard_limit_tokens": state.hard_limit,
                },
            )
    except IntegrityError:
        pass  # another answer recorded it first: once per month is the point


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"%\((\w+)\)s", template)
    regex = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>.+?)" for i, part in enumerate(parts)
    )
    return re.compile(f"^{regex}$", re.DOTALL)


_PATTERNS = [(template, _pattern(template)) for template in NOTICES]


def localized_notice(notice: str) -> str:
    """A stored notice in the active language: a quota notice is matched against its English
    template and re-rendered from the translated one with the same values; any other notice
    is a fixed text, translated as it is."""
    for template, pattern in _PATTERNS:
        match = pattern.match(notice)
        if match:
            return gettext(template) % match.groupdict()
    return gettext(notice) if notice else ""
