"""Sign-in settings: which authentication backends are on, and how they are configured.

Star-imported into kb/settings.py. Local accounts always work (they are the way in for the
first superadmin and when the directory is down); LDAP / Active Directory is switched on by
LDAP_SERVER_URI and OpenID Connect by OIDC_RP_CLIENT_ID. A variable of either family set
without its switch, or a switch without what it needs, stops start-up with a ConfigError:
a half-configured sign-in is a typo waiting to lock people out, or worse, let them in.

`sign_in_settings()` reads the environment each time it is called, so the tests configure
the backends exactly the way an operator does.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from kb.env import ConfigError, envbool, envint, envoptional, envstr
from kb.settings_checks import require_extra

LOCAL_BACKEND = "django.contrib.auth.backends.ModelBackend"
LDAP_BACKEND = "kb.accounts.ldap_backend.DirectoryLDAPBackend"
OIDC_BACKEND = "kb.accounts.backends.CompanyOIDCBackend"

LDAP_VARIABLES = (
    "LDAP_BIND_DN",
    "LDAP_BIND_PASSWORD",
    "LDAP_USER_SEARCH_BASE",
    "LDAP_USER_FILTER",
    "LDAP_GROUP_SEARCH_BASE",
    "LDAP_GROUP_TYPE",
    "LDAP_GROUP_FILTER",
    "LDAP_START_TLS",
    "LDAP_TLS_CA_FILE",
    "LDAP_TIMEOUT_SECONDS",
    "LDAP_FIRST_NAME_ATTR",
    "LDAP_LAST_NAME_ATTR",
    "LDAP_EMAIL_ATTR",
)
OIDC_VARIABLES = (
    "OIDC_RP_CLIENT_SECRET",
    "OIDC_OP_AUTHORIZATION_ENDPOINT",
    "OIDC_OP_TOKEN_ENDPOINT",
    "OIDC_OP_USER_ENDPOINT",
    "OIDC_OP_JWKS_ENDPOINT",
    "OIDC_RP_SIGN_ALGO",
    "OIDC_RP_SCOPES",
    "OIDC_GROUPS_CLAIM",
    "OIDC_CA_BUNDLE",
    "OIDC_TIMEOUT_SECONDS",
)

# LDAP_GROUP_TYPE (compared without regard to case): django-auth-ldap's group type class and
# the filter that finds groups of that kind.
LDAP_GROUP_TYPES = {
    "groupofnames": ("GroupOfNamesType", "(objectClass=groupOfNames)"),
    "nestedgroupofnames": ("NestedGroupOfNamesType", "(objectClass=groupOfNames)"),
    "groupofuniquenames": ("GroupOfUniqueNamesType", "(objectClass=groupOfUniqueNames)"),
    "activedirectory": ("ActiveDirectoryGroupType", "(objectClass=group)"),
    "nestedactivedirectory": ("NestedActiveDirectoryGroupType", "(objectClass=group)"),
    "posix": ("PosixGroupType", "(objectClass=posixGroup)"),
}
_LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}
OIDC_SIGN_ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "HS256")


def sign_in_settings() -> dict[str, Any]:
    """Every sign-in setting, from the environment: AUTHENTICATION_BACKENDS and the settings
    django-auth-ldap (AUTH_LDAP_*) and mozilla-django-oidc (OIDC_*) read."""
    ldap = ldap_settings()
    oidc = oidc_settings()
    # The directory first, so it decides (and re-syncs memberships) whenever it knows the
    # person; local passwords after it keep working for local accounts and when it is down.
    backends = [LDAP_BACKEND] if ldap else []
    backends.append(LOCAL_BACKEND)
    if oidc:
        backends.append(OIDC_BACKEND)
    return {"AUTHENTICATION_BACKENDS": backends, **ldap, **oidc}


def _refuse_without_switch(switch: str, variables: tuple[str, ...]) -> None:
    stray = [name for name in variables if envoptional(name) is not None]
    if stray:
        raise ConfigError(f"{', '.join(stray)} set but {switch} is not; set it or unset these")


def _required(switch: str, names: tuple[str, ...]) -> dict[str, str]:
    values = {name: envoptional(name) for name in names}
    missing = [name for name, value in values.items() if value is None]
    if missing:
        raise ConfigError(f"{switch} is set, so {', '.join(missing)} must be set too")
    return {name: value for name, value in values.items() if value is not None}


def ldap_settings() -> dict[str, Any]:
    server_uri = envoptional("LDAP_SERVER_URI")
    if server_uri is None:
        _refuse_without_switch("LDAP_SERVER_URI", LDAP_VARIABLES)
        return {}
    # Imported only when LDAP is on: python-ldap loads the OpenLDAP client library, and it is
    # an extra (it compiles against OpenLDAP's headers), absent from the default install.
    require_extra("LDAP_SERVER_URI", ("ldap", "django_auth_ldap"), "ldap", "make install-ldap")
    import ldap
    from django_auth_ldap import config

    required = _required("LDAP_SERVER_URI", ("LDAP_USER_SEARCH_BASE", "LDAP_GROUP_SEARCH_BASE"))
    start_tls = envbool("LDAP_START_TLS", False)
    _check_ldap_uris(server_uri, start_tls)

    bind_dn = envoptional("LDAP_BIND_DN")
    bind_password = envoptional("LDAP_BIND_PASSWORD")
    if (bind_dn is None) != (bind_password is None):
        raise ConfigError(
            "LDAP_BIND_DN and LDAP_BIND_PASSWORD go together (both unset means anonymous search)"
        )

    user_filter = envstr("LDAP_USER_FILTER", "(uid=%(user)s)")
    # Without the placeholder every sign-in would find the same entry.
    if "%(user)s" not in user_filter:
        raise ConfigError(f"LDAP_USER_FILTER={user_filter!r} must contain %(user)s")

    group_type_name = envstr("LDAP_GROUP_TYPE", "groupOfNames")
    try:
        group_type_class, default_group_filter = LDAP_GROUP_TYPES[group_type_name.lower()]
    except KeyError:
        raise ConfigError(
            f"LDAP_GROUP_TYPE={group_type_name!r} must be one of: "
            "groupOfNames, nestedGroupOfNames, groupOfUniqueNames, activeDirectory, "
            "nestedActiveDirectory, posix"
        ) from None

    timeout = envint("LDAP_TIMEOUT_SECONDS", 10, minimum=1)
    # Referrals off: Active Directory returns them for the forest's other partitions, and
    # python-ldap would follow them with an anonymous bind and fail. The timeouts keep a
    # stalled directory from holding web threads.
    connection_options: dict[int, Any] = {
        ldap.OPT_REFERRALS: 0,
        ldap.OPT_NETWORK_TIMEOUT: timeout,
        ldap.OPT_TIMEOUT: timeout,
    }
    ca_file = envoptional("LDAP_TLS_CA_FILE")
    if ca_file is not None:
        connection_options[ldap.OPT_X_TLS_CACERTFILE] = ca_file
        connection_options[ldap.OPT_X_TLS_REQUIRE_CERT] = ldap.OPT_X_TLS_DEMAND
        # Must come last: it makes libldap apply the TLS options set before it.
        connection_options[ldap.OPT_X_TLS_NEWCTX] = 0

    return {
        "AUTH_LDAP_SERVER_URI": server_uri,
        "AUTH_LDAP_BIND_DN": bind_dn or "",
        "AUTH_LDAP_BIND_PASSWORD": bind_password or "",
        "AUTH_LDAP_START_TLS": start_tls,
        "AUTH_LDAP_CONNECTION_OPTIONS": connection_options,
        "AUTH_LDAP_USER_SEARCH": config.LDAPSearch(
            required["LDAP_USER_SEARCH_BASE"], ldap.SCOPE_SUBTREE, user_filter
        ),
        "AUTH_LDAP_GROUP_SEARCH": config.LDAPSearch(
            required["LDAP_GROUP_SEARCH_BASE"],
            ldap.SCOPE_SUBTREE,
            envstr("LDAP_GROUP_FILTER", default_group_filter),
        ),
        "AUTH_LDAP_GROUP_TYPE": getattr(config, group_type_class)(),
        "AUTH_LDAP_USER_ATTR_MAP": {
            "first_name": envstr("LDAP_FIRST_NAME_ATTR", "givenName"),
            "last_name": envstr("LDAP_LAST_NAME_ATTR", "sn"),
            "email": envstr("LDAP_EMAIL_ATTR", "mail"),
        },
        # Names and e-mail follow the directory at every sign-in; memberships do too, through
        # DirectoryGroupMapping (kb/accounts/directory.py), never through Django groups or
        # permissions mirrored from the directory.
        "AUTH_LDAP_ALWAYS_UPDATE_USER": True,
        "AUTH_LDAP_MIRROR_GROUPS": False,
        "AUTH_LDAP_FIND_GROUP_PERMS": False,
        # No cache: a group removed in the directory takes effect at the next sign-in.
        "AUTH_LDAP_CACHE_TIMEOUT": 0,
    }


def _check_ldap_uris(server_uri: str, start_tls: bool) -> None:
    # python-ldap accepts several URIs separated by spaces and tries them in turn.
    for uri in server_uri.split():
        parts = urlsplit(uri)
        if parts.scheme not in ("ldap", "ldaps", "ldapi"):
            raise ConfigError(
                f"LDAP_SERVER_URI={server_uri!r}: {uri!r} is not an ldap://, ldaps:// or "
                "ldapi:// URI"
            )
        if parts.scheme == "ldaps" and start_tls:
            raise ConfigError(
                f"LDAP_SERVER_URI={uri!r} is already TLS (ldaps://); unset LDAP_START_TLS"
            )
        # People's passwords are sent in the bind: only over TLS, a local socket or loopback.
        if parts.scheme == "ldap" and not start_tls and parts.hostname not in _LOOPBACK_HOSTS:
            raise ConfigError(
                f"LDAP_SERVER_URI={uri!r} would send passwords unencrypted; use ldaps:// or "
                "set LDAP_START_TLS=true"
            )


def oidc_settings() -> dict[str, Any]:
    client_id = envoptional("OIDC_RP_CLIENT_ID")
    if client_id is None:
        _refuse_without_switch("OIDC_RP_CLIENT_ID", OIDC_VARIABLES)
        return {}
    sign_algo = envstr("OIDC_RP_SIGN_ALGO", "RS256")
    if sign_algo not in OIDC_SIGN_ALGORITHMS:
        raise ConfigError(
            f"OIDC_RP_SIGN_ALGO={sign_algo!r} must be one of: {', '.join(OIDC_SIGN_ALGORITHMS)}"
        )
    needed = [
        "OIDC_RP_CLIENT_SECRET",
        "OIDC_OP_AUTHORIZATION_ENDPOINT",
        "OIDC_OP_TOKEN_ENDPOINT",
        "OIDC_OP_USER_ENDPOINT",
    ]
    # Public-key signatures are checked against the provider's published keys; HS256 is
    # checked with the client secret instead.
    if sign_algo != "HS256":
        needed.append("OIDC_OP_JWKS_ENDPOINT")
    required = _required("OIDC_RP_CLIENT_ID", tuple(needed))
    for name in needed[1:]:
        parts = urlsplit(required[name])
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ConfigError(f"{name}={required[name]!r} is not an http(s) URL")
        # Tokens and user details travel on these: only over TLS, or on loopback.
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS:
            raise ConfigError(f"{name}={required[name]!r} must use https://")

    scopes = envstr("OIDC_RP_SCOPES", "openid email profile")
    if "openid" not in scopes.split():
        raise ConfigError(f"OIDC_RP_SCOPES={scopes!r} must include openid")

    return {
        "OIDC_RP_CLIENT_ID": client_id,
        "OIDC_RP_CLIENT_SECRET": required["OIDC_RP_CLIENT_SECRET"],
        "OIDC_OP_AUTHORIZATION_ENDPOINT": required["OIDC_OP_AUTHORIZATION_ENDPOINT"],
        "OIDC_OP_TOKEN_ENDPOINT": required["OIDC_OP_TOKEN_ENDPOINT"],
        "OIDC_OP_USER_ENDPOINT": required["OIDC_OP_USER_ENDPOINT"],
        "OIDC_OP_JWKS_ENDPOINT": required.get("OIDC_OP_JWKS_ENDPOINT"),
        "OIDC_RP_SIGN_ALGO": sign_algo,
        "OIDC_RP_SCOPES": scopes,
        "OIDC_GROUPS_CLAIM": envstr("OIDC_GROUPS_CLAIM", "groups"),
        # A path makes requests trust that CA bundle (an intranet CA) instead of certifi's.
        "OIDC_VERIFY_SSL": envoptional("OIDC_CA_BUNDLE") or True,
        "OIDC_TIMEOUT": envint("OIDC_TIMEOUT_SECONDS", 10, minimum=1),
        # PKCE and the nonce bind the returned code and ID token to this browser's session.
        "OIDC_USE_PKCE": True,
        "OIDC_USE_NONCE": True,
        "OIDC_CREATE_USER": True,
    }


_SIGN_IN_SETTINGS = sign_in_settings()
globals().update(_SIGN_IN_SETTINGS)
# What kb/settings.py's star import takes: the settings, not this module's helpers.
__all__ = sorted(_SIGN_IN_SETTINGS)
