"""Issuing and revoking service-account tokens: one path for the portal page and the command."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from kb.accounts.models import Department
from kb.api.models import ApiToken, ServiceAccount
from kb.audit.trail import record
from kb.library.models import Collection


class EmployeeAccount(ValueError):
    """The name belongs to a person who signs in; it cannot become a service account."""


def is_employee_account(username: str) -> bool:
    user = get_user_model().objects.filter(username=username).first()
    return bool(
        user is not None and not hasattr(user, "service_account") and user.has_usable_password()
    )


def issue_service_token(
    *,
    account_name: str,
    name: str,
    actions: list[str],
    expires_days: int,
    rate_limit_per_minute: int,
    departments: Iterable[Department] = (),
    collections: Iterable[Collection] = (),
    created_by: Any = None,
) -> tuple[ApiToken, str]:
    """Create the service account if needed (a user that can never sign in to the portal)
    and a token for it; returns the token and its secret, which is shown once and not kept."""
    if is_employee_account(account_name):
        raise EmployeeAccount(f"{account_name} is an employee's account, not a service account")
    with transaction.atomic():
        user, created = get_user_model().objects.get_or_create(username=account_name)
        if created:
            user.set_unusable_password()
            user.save()
        account, _ = ServiceAccount.objects.get_or_create(user=user)
        token, secret = ApiToken.issue(
            account=account,
            name=name,
            actions=actions,
            rate_limit_per_minute=rate_limit_per_minute,
            expires_at=timezone.now() + timedelta(days=expires_days),
            created_by=created_by,
        )
        token.departments.set(list(departments))
        token.collections.set(list(collections))
        record(
            "token.created",
            target=token,
            details={"prefix": token.prefix, "account": account_name, "actions": token.actions},
        )
    return token, secret


def revoke_token(token: ApiToken) -> None:
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    record("token.revoked", target=token, details={"prefix": token.prefix})
