"""Sign-in through the company directory (LDAP / Active Directory): django-auth-ldap with the
rules of kb/accounts/backends.py (read its docstring for how accounts are matched).

A module of its own because python-ldap is the `ldap` extra: nothing else imports this, and
settings name it only when LDAP_SERVER_URI is set (kb/settings_sso.py), after checking the
extra is installed.
"""

from __future__ import annotations

import logging
from typing import Any

import ldap
from django.contrib.auth.models import User
from django.http import HttpRequest
from django_auth_ldap.backend import LDAPBackend

from kb.accounts.backends import OIDC_USERNAME_PREFIX
from kb.accounts.directory import sync_directory_memberships

logger = logging.getLogger(__name__)


class DirectoryLDAPBackend(LDAPBackend):  # type: ignore[misc]  # django-auth-ldap ships no type information
    """django-auth-ldap, plus membership sync and the inactive-user rules Django's own
    ModelBackend has (django-auth-ldap does not check is_active)."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> User | None:
        if username is not None and username.strip().lower().startswith(OIDC_USERNAME_PREFIX):
            return None  # that namespace belongs to OpenID Connect accounts
        user: User | None = super().authenticate(request, username, password, **kwargs)
        return user

    def get_or_build_user(self, username: str, ldap_user: Any) -> tuple[User, bool]:
        user, built = super().get_or_build_user(username, ldap_user)
        if not built and user.has_usable_password():
            # A local account (say the break-glass "admin") that happens to share a name
            # with a directory entry stays local: the directory's "admin" must not become it.
            # Setting the account's password unusable hands it to the directory.
            logger.warning(
                "directory sign-in refused: %s is a local account with its own password",
                user.get_username(),
            )
            raise ldap_user.AuthenticationFailed("a local account has this username")
        return user, built

    def authenticate_ldap_user(self, ldap_user: Any, password: str) -> User | None:
        user: User | None = super().authenticate_ldap_user(ldap_user, password)
        if user is None:
            return None
        if not self.user_can_authenticate(user):
            logger.info("directory sign-in refused: %s is deactivated", user.get_username())
            return None
        try:
            group_dns = sorted(ldap_user.group_dns)
        except ldap.LDAPError as exc:
            # Without the groups the memberships cannot be brought up to date; letting the
            # person in anyway would keep access the directory may have taken away.
            logger.warning(
                "directory sign-in refused: groups of %s could not be read: %s",
                user.get_username(),
                exc,
            )
            return None
        sync_directory_memberships(user, group_dns)
        return user

    def user_can_authenticate(self, user: User) -> bool:
        return bool(getattr(user, "is_active", True))

    def get_user(self, user_id: int) -> User | None:
        user: User | None = super().get_user(user_id)
        if user is None or not self.user_can_authenticate(user):
            return None
        return user
