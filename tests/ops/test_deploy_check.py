"""`manage.py check --deploy` under the environment compose gives the app containers."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def production_environment(tmp_path: Path) -> dict[str, str]:
    """What compose/docker-compose.yml and env.example set for web, worker and beat."""
    environment = {
        name: value
        for name, value in os.environ.items()
        # Nothing from the developer's shell that could loosen or tighten the outcome.
        if not name.startswith(("SECURE_", "SESSION_", "CSRF_", "DEBUG", "KB_", "ALLOWED_"))
    }
    environment.update(
        {
            "DJANGO_SETTINGS_MODULE": "kb.settings",
            "KB_PRODUCTION": "true",
            "DEBUG": "false",
            "DATABASE_URL": os.environ.get(
                "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/kb_deploy"
            ),
            "SECRET_KEY": secrets.token_urlsafe(50),
            "KB_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
            "ALLOWED_HOSTS": "kb.example.internal",
            "CSRF_TRUSTED_ORIGINS": "https://kb.example.internal",
            "KB_TRUSTED_PROXIES": "172.30.0.2",
            "KB_DATA_DIR": str(tmp_path / "data"),
            "HF_HUB_OFFLINE": "1",
        }
    )
    return environment


def deploy_check(environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_the_deploy_check(tmp_path: Path) -> None:
    result = deploy_check(production_environment(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("override", "warning"),
    [
        ({"DEBUG": "true"}, "security.W018"),
        ({"SESSION_COOKIE_SECURE": "false"}, "security.W012"),
        ({"SECURE_HSTS_SECONDS": "0"}, "security.W004"),
        ({"SECRET_KEY": "short-and-guessable"}, "security.W009"),
        ({"KB_PRODUCTION": "false"}, "security.W008"),
    ],
)
def test_an_insecure_setup_fails_the_deploy_check(
    tmp_path: Path, override: dict[str, str], warning: str
) -> None:
    environment = production_environment(tmp_path)
    environment.update(override)
    result = deploy_check(environment)
    assert result.returncode != 0
    assert warning in result.stdout + result.stderr


def test_health_probes_are_exempt_from_the_https_redirect(tmp_path: Path) -> None:
    code = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.SECURE_PROXY_SSL_HEADER, s.SECURE_REDIRECT_EXEMPT, "
        "s.SECURE_SSL_REDIRECT]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=production_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    header, exempt, redirect = json.loads(result.stdout.strip().splitlines()[-1])
    assert header == ["HTTP_X_FORWARDED_PROTO", "https"] and redirect is True
    assert {"^healthz$", "^readyz$", "^metrics$"} <= set(exempt)
