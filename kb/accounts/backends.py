"""Sign-in through OpenID Connect here, and through the company directory (LDAP / Active
Directory) in kb/accounts/ldap_backend.py, which only the `ldap` extra can import.

Both backends re-sync the person's directory memberships at every sign-in
(kb/accounts/directory.py), refuse deactivated people, and stop returning a deactivated
person for an existing session, so deactivation takes effect on the next request.

A directory sign-in uses the portal account of the same username (compared without regard
to case) that the directory created, or creates it. An account with a usable local password
is a local account and is never taken over by a directory entry of the same name.

How an OpenID Connect identity is tied to a portal account: by the `sub` claim, the one
claim the specification promises is unique at the provider and never reassigned. The
portal account's username is "oidc:<sub>" (or "oidc:sha256:<hash of sub>" for a sub too long
for a username), so no new table is needed and the binding cannot drift:
- e-mail addresses and preferred_username can change hands (a renamed or re-hired person, a
  recycled mailbox), so matching on them would hand one person's account to another;
- ":" is not allowed in the usernames people type or that the admin creates, and the LDAP
  backend refuses the prefix, so neither a local nor a directory account can collide with
  such a username, and an OpenID Connect sign-in can never land in one of them.
The person's names and e-mail address are copied from the claims at every sign-in for
display only. Someone who signs in both through LDAP and OpenID Connect gets two accounts;
deployments pick one of the two for their people.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from django.http import HttpRequest
from django.utils.module_loading import import_string
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from kb.accounts.directory import sync_directory_memberships

logger = logging.getLogger(__name__)

OIDC_USERNAME_PREFIX = "oidc:"
_USERNAME_MAX_LENGTH = 150


def oidc_username(subject: str) -> str:
    """The portal username of the person the provider calls `subject` (their `sub`)."""
    username = f"{OIDC_USERNAME_PREFIX}{subject}"
    if len(username) <= _USERNAME_MAX_LENGTH:
        return username
    digest = hashlib.sha256(subject.encode("utf-8")).hexdigest()
    return f"{OIDC_USERNAME_PREFIX}sha256:{digest}"


def groups_from_claims(claims: dict[str, Any], claim_name: str) -> list[str]:
    """The group names in `claim_name`: a top-level claim (which may itself contain dots, as
    namespaced claims like "https://corp.example/groups" do), else a dotted path into nested
    claims ("realm_access.roles")."""
    value: Any = claims.get(claim_name)
    if value is None and "." in claim_name:
        value = claims
        for part in claim_name.split("."):
            value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        # Taken as "no groups": directory memberships are removed rather than kept stale.
        logger.warning("the OpenID Connect claims carry no %r claim", claim_name)
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [group for group in value if isinstance(group, str)]
    logger.warning("the %r claim is neither a string nor a list; ignored", claim_name)
    return []


class CompanyOIDCBackend(OIDCAuthenticationBackend):  # type: ignore[misc]  # mozilla-django-oidc ships no type information
    """mozilla-django-oidc's authorization-code flow, with accounts keyed by `sub` (see the
    module docstring) and memberships synced from the groups claim."""

    def authenticate(self, request: HttpRequest | None, **kwargs: Any) -> User | None:
        # Only the callback view passes the nonce it kept in the session. Any other
        # authenticate() call (the password form) must not make this backend redeem a
        # `code` found in that request's query string.
        if kwargs.get("nonce") is None:
            return None
        user: User | None = super().authenticate(request, **kwargs)
        return user

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        subject = claims.get("sub")
        return isinstance(subject, str) and subject != ""

    def get_userinfo(
        self, access_token: str, id_token: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        userinfo: dict[str, Any] = super().get_userinfo(access_token, id_token, payload)
        # OpenID Connect Core 5.3.2: user info about another subject must not be used.
        if userinfo.get("sub") != payload.get("sub"):
            raise SuspiciousOperation("the userinfo response is about another subject")
        # User info wins (it is current); the ID token fills in claims that some providers
        # put only there (Azure AD's groups).
        return {**payload, **userinfo}

    def get_or_create_user(
        self, access_token: str, id_token: str, payload: dict[str, Any]
    ) -> User | None:
        # mozilla-django-oidc checks the signature, expiry and nonce, not the audience.
        audience = payload.get("aud")
        audiences = [audience] if isinstance(audience, str) else list(audience or [])
        if self.OIDC_RP_CLIENT_ID not in audiences:
            raise SuspiciousOperation("the ID token was issued to another client")
        claims = self.get_userinfo(access_token, id_token, payload)
        if not self.verify_claims(claims):
            raise SuspiciousOperation("the provider sent no subject (sub) claim")
        with transaction.atomic():
            user, created = User.objects.get_or_create(username=oidc_username(claims["sub"]))
            if created:
                user.set_unusable_password()
            elif not self.user_can_authenticate(user):
                logger.info("OpenID Connect sign-in refused: %s is deactivated", user.username)
                return None
            _copy_profile(user, claims)
            user.save()
            sync_directory_memberships(
                user, groups_from_claims(claims, self.get_settings("OIDC_GROUPS_CLAIM", "groups"))
            )
        return user

    def get_user(self, user_id: int) -> User | None:
        user: User | None = super().get_user(user_id)
        if user is None or not self.user_can_authenticate(user):
            return None
        return user


def _copy_profile(user: User, claims: dict[str, Any]) -> None:
    def text(name: str, limit: int) -> str:
        value = claims.get(name)
        return value[:limit] if isinstance(value, str) else ""

    user.first_name = text("given_name", 150)
    user.last_name = text("family_name", 150)
    if not user.first_name and not user.last_name:
        # Something human to show in place of the opaque username.
        user.first_name = text("name", 150) or text("preferred_username", 150)
    email = text("email", 254)
    user.email = email if "@" in email else ""


def company_sign_in_enabled() -> bool:
    """Whether OpenID Connect sign-in is switched on (its backend is configured)."""
    return any(
        issubclass(import_string(path), CompanyOIDCBackend)
        for path in settings.AUTHENTICATION_BACKENDS
    )
