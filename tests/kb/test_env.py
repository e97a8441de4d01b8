from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kb.env import ConfigError, envbool, envchoice, envint, envoptional, envstr

ROOT = Path(__file__).resolve().parents[2]


def test_bad_values_fail_loudly_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KB_X", "maybe")
    with pytest.raises(ConfigError, match="KB_X='maybe' is not a boolean"):
        envbool("KB_X", False)
    monkeypatch.setenv("KB_X", "ten")
    with pytest.raises(ConfigError, match="KB_X='ten' is not an integer"):
        envint("KB_X", 1)
    monkeypatch.setenv("KB_X", "0")
    with pytest.raises(ConfigError, match="below the minimum"):
        envint("KB_X", 1, minimum=1)
    monkeypatch.setenv("KB_X", "gpu")
    with pytest.raises(ConfigError, match="must be one of: cpu, cuda"):
        envchoice("KB_X", "cpu", ("cpu", "cuda"))


def test_values_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KB_X", raising=False)
    assert envbool("KB_X", True) is True
    assert envint("KB_X", 7) == 7
    assert envstr("KB_X", "d") == "d"
    monkeypatch.setenv("KB_X", "Yes")
    assert envbool("KB_X", False) is True


def test_secrets_can_come_from_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    monkeypatch.delenv("KB_TOKEN", raising=False)
    monkeypatch.setenv("KB_TOKEN_FILE", str(secret))
    assert envoptional("KB_TOKEN") == "s3cret"
    monkeypatch.setenv("KB_TOKEN", "other")
    with pytest.raises(ConfigError, match="both set"):
        envoptional("KB_TOKEN")
    monkeypatch.delenv("KB_TOKEN")
    monkeypatch.setenv("KB_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="cannot be read"):
        envoptional("KB_TOKEN")


PROBE = (
    "import django, json; django.setup(); from django.conf import settings as s;"
    "print(json.dumps([s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL,"
    " s.KB_EMBEDDED_WORKER, s.QDRANT_URL, s.LLM_BASE_URL]))"
)


def _settings_with(env: dict[str, str], tmp_path: Path) -> str:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "CELERY_", "QDRANT_", "LLM_", "SECRET_KEY"))
    }
    clean.update({"DJANGO_SETTINGS_MODULE": "kb.settings", "KB_DATA_DIR": str(tmp_path)}, **env)
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout + result.stderr


def test_no_environment_gives_the_embedded_default(tmp_path: Path) -> None:
    out = _settings_with({}, tmp_path)
    assert '["django.db.backends.sqlite3", "filesystem://", true, null, null]' in out
    assert (tmp_path / "secret_key").exists()


def test_environment_switches_to_production_parts(tmp_path: Path) -> None:
    out = _settings_with(
        {
            "DATABASE_URL": "postgres://kb@db:5432/kb",
            "SECRET_KEY": "x" * 50,
            "CELERY_BROKER_URL": "redis://redis:6379/0",
            "QDRANT_URL": "http://qdrant:6333",
            "LLM_BASE_URL": "http://vllm:8000/v1",
        },
        tmp_path,
    )
    assert (
        '["django.db.backends.postgresql", "redis://redis:6379/0", false, '
        '"http://qdrant:6333", "http://vllm:8000/v1"]'
    ) in out


def test_production_database_without_secret_key_refuses_to_start(tmp_path: Path) -> None:
    out = _settings_with({"DATABASE_URL": "postgres://kb@db:5432/kb"}, tmp_path)
    assert "SECRET_KEY (or SECRET_KEY_FILE) must be set" in out
