"""Settings of the OpenID Connect provider the sign-in tests run against: a separate Django
project (django-oauth-toolkit), in its own process, with its own SQLite database.

Everything lives in OIDC_PROVIDER_DIR, which tests/oidc_provider/server.py creates, with the
RSA key the provider signs ID tokens with.
"""

from __future__ import annotations

import os
from pathlib import Path

STATE_DIR = Path(os.environ["OIDC_PROVIDER_DIR"])

SECRET_KEY = (STATE_DIR / "secret_key").read_text(encoding="utf-8")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "oauth2_provider",
    "tests.oidc_provider",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "tests.oidc_provider.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [Path(__file__).resolve().parent / "templates"],
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(STATE_DIR / "provider.db")}
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
# Browser and portal share the host 127.0.0.1, and cookies ignore ports: the provider's
# cookies must not overwrite the portal's.
SESSION_COOKIE_NAME = "provider_sessionid"
CSRF_COOKIE_NAME = "provider_csrftoken"
LOGIN_URL = "/accounts/login/"
# Fast hashing: the test people's passwords are not secrets.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

OAUTH2_PROVIDER = {
    "OIDC_ENABLED": True,
    "OIDC_RSA_PRIVATE_KEY": (STATE_DIR / "signing_key.pem").read_text(encoding="utf-8"),
    "OAUTH2_VALIDATOR_CLASS": "tests.oidc_provider.validators.GroupsClaimValidator",
    "SCOPES": {
        "openid": "Sign you in",
        "email": "Your e-mail address",
        "profile": "Your name",
        "groups": "Your groups",
    },
    "PKCE_REQUIRED": True,
}
