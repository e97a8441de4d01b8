"""`manage.py api_token create|list|revoke`: service accounts and their tokens.

create ACCOUNT --actions search,ask [--department SLUG ...] [--collection ID ...]
       [--expires-days N] [--rate N] [--name NAME]
    creates the service account if needed (a user that cannot sign in to the portal) and
    prints the token once; give the account memberships (admin site or the department
    pages) for what it may read
list [ACCOUNT]          prefixes, actions, scope, expiry, last use; never secrets
revoke PREFIX           the token stops working at once
"""

from __future__ import annotations

import getpass
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from kb.accounts.models import Department
from kb.api.models import ApiToken
from kb.api.tokens import EmployeeAccount, issue_service_token, revoke_token
from kb.audit import context
from kb.library.models import Collection


class Command(BaseCommand):
    help = "Create, list and revoke API tokens of service accounts."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True)
        create = sub.add_parser("create")
        create.add_argument("account")
        create.add_argument(
            "--actions", required=True, help="comma-separated: " + ", ".join(ApiToken.Action.values)
        )
        create.add_argument("--department", action="append", default=[], help="slug; repeatable")
        create.add_argument("--collection", action="append", default=[], type=int)
        create.add_argument("--expires-days", type=int, default=365)
        create.add_argument("--rate", type=int, default=120, help="requests per minute")
        create.add_argument("--name", default="")
        listing = sub.add_parser("list")
        listing.add_argument("account", nargs="?")
        revoke = sub.add_parser("revoke")
        revoke.add_argument("prefix")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            operator = getpass.getuser()
        except (KeyError, OSError):
            operator = "unknown"
        with context.acting(context.ActorContext(via="command", name=f"os:{operator}")):
            getattr(self, f"_{options['subcommand']}")(options)

    def _create(self, options: dict[str, Any]) -> None:
        actions = [a.strip() for a in options["actions"].split(",") if a.strip()]
        unknown = set(actions) - set(ApiToken.Action.values)
        if unknown or not actions:
            raise CommandError(
                f"unknown actions {sorted(unknown)}; choose from {ApiToken.Action.values}"
            )
        departments = list(Department.objects.filter(slug__in=options["department"]))
        if len(departments) != len(set(options["department"])):
            raise CommandError("an unknown department slug was given")
        collections = list(Collection.objects.filter(pk__in=options["collection"]))
        if len(collections) != len(set(options["collection"])):
            raise CommandError("an unknown collection id was given")
        try:
            token, secret = issue_service_token(
                account_name=options["account"],
                name=options["name"] or f"{options['account']} token",
                actions=actions,
                expires_days=options["expires_days"],
                rate_limit_per_minute=options["rate"],
                departments=departments,
                collections=collections,
            )
        except EmployeeAccount as exc:
            raise CommandError(str(exc)) from exc
        user = token.account.user
        self.stdout.write(self.style.SUCCESS(f"Token for {user} (shown once, store it now):"))
        self.stdout.write(secret)

    def _list(self, options: dict[str, Any]) -> None:
        tokens = ApiToken.objects.select_related("account__user").prefetch_related("departments")
        if options["account"]:
            tokens = tokens.filter(account__user__username=options["account"])
        for token in tokens:
            state = "revoked" if token.revoked_at else "usable" if token.is_usable else "expired"
            scope = ",".join(d.slug for d in token.departments.all()) or "account's"
            expires = f"{token.expires_at:%Y-%m-%d}" if token.expires_at else "never"
            self.stdout.write(
                f"{token.prefix}  {token.account}  {','.join(token.actions)}  scope={scope}"
                f"  {state}  expires={expires}  last_used={token.last_used_at or '-'}"
            )

    def _revoke(self, options: dict[str, Any]) -> None:
        token = ApiToken.objects.filter(prefix=options["prefix"]).first()
        if token is None:
            raise CommandError(f"no token {options['prefix']}")
        revoke_token(token)
        self.stdout.write(f"Revoked {token.prefix}.")
