"""Sign-in throttling, counted from the audit trail itself.

Failed sign-ins are audit records already (`auth.login_failed`, with the name typed and the
client address), and the trail is shared by every web process, so it is the counter: no
cache to configure, nothing lost on restart, and the counts an auditor sees are the counts
that were enforced. A successful sign-in resets the count for that account name.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from kb.audit.models import AuditRecord


def refusal_reason(username: str, ip: str) -> str:
    """Why a sign-in attempt must be refused before the password is even checked, or ""."""
    since = timezone.now() - timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS)
    failures = AuditRecord.objects.filter(action="auth.login_failed", at__gte=since)
    if username:
        last_success = AuditRecord.objects.filter(
            action="auth.login", actor=username, at__gte=since
        ).aggregate(last=Max("at"))["last"]
        by_name = failures.filter(actor=username)
        if last_success is not None:
            by_name = by_name.filter(at__gt=last_success)
        if by_name.count() >= settings.LOGIN_MAX_FAILURES_PER_USER:
            return "account"
    if ip and failures.filter(ip=ip).count() >= settings.LOGIN_MAX_FAILURES_PER_IP:
        return "address"
    return ""
