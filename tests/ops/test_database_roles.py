"""The production database roles (compose/postgres-init): the application's role meets the
audit trail's protection and cannot get around it, and the product works under it.

Runs the real init script and real migrations against a database of its own, then acts as
the application role in a separate process, as the web and worker containers do.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
INIT_SCRIPT = ROOT / "compose" / "postgres-init" / "10-app-role.sh"
HOST = "127.0.0.1"

ATTEMPTS = """
import json
from django.db import connection, transaction
from kb.audit.trail import record
from kb.audit.verify import verify
for _ in range(3):
    record("access.denied", outcome="denied")
results = {}
for name, statement in {
    "update": "UPDATE audit_auditrecord SET actor = 'x' WHERE seq = 1",
    "delete": "DELETE FROM audit_auditrecord WHERE seq = 1",
    "truncate": "TRUNCATE audit_auditrecord CASCADE",
    "disable_trigger": "ALTER TABLE audit_auditrecord DISABLE TRIGGER USER",
    "replica_mode": "SET session_replication_role = replica",
    "purge_flag_delete": "SET LOCAL kb.audit_purge = 'on'; DELETE FROM audit_auditrecord",
}.items():
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement)
        results[name] = "allowed"
    except Exception as exc:
        results[name] = str(exc).splitlines()[0]
results["verify_ok"] = verify().ok
print("RESULT " + json.dumps(results))
"""


def _admin() -> psycopg.Connection:
    return psycopg.connect(host=HOST, user="postgres", dbname="postgres", autocommit=True)


@pytest.fixture
def roles_database() -> Iterator[dict[str, str]]:
    suffix = secrets.token_hex(4)
    names = {"db": f"kb_roles_{suffix}", "role": f"kb_app_{suffix}", "password": suffix * 2}
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{names["db"]}"')
    try:
        yield names
    finally:
        with _admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{names["db"]}" WITH (FORCE)')
            admin.execute(f'DROP ROLE IF EXISTS "{names["role"]}"')


def _env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(DATABASE_URL=database_url, **extra)
    return env


def test_the_application_role_cannot_change_or_unprotect_the_audit_trail(
    roles_database: dict[str, str], tmp_path: Path
) -> None:
    db, role, password = roles_database["db"], roles_database["role"], roles_database["password"]
    subprocess.run(
        ["sh", str(INIT_SCRIPT)],
        env={
            **os.environ,
            "PGHOST": HOST,
            "POSTGRES_USER": "postgres",
            "POSTGRES_DB": db,
            "KB_APP_DB_ROLE": role,
            "KB_APP_DB_PASSWORD": password,
        },
        check=True,
        capture_output=True,
    )
    data = {"KB_DATA_DIR": str(tmp_path), "KB_DATABASE_APP_ROLE": role}
    owner_url = f"postgres://postgres@{HOST}:5432/{db}"
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env=_env(owner_url, **data),
        check=True,
        capture_output=True,
    )
    app_url = f"postgres://{role}:{password}@{HOST}:5432/{db}"
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", ATTEMPTS],
        cwd=ROOT,
        env=_env(app_url, **data),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    results = json.loads(line.removeprefix("RESULT "))
    assert results.pop("verify_ok") is True  # the app wrote a valid chain as this role
    for attempt, outcome in results.items():
        assert outcome != "allowed", attempt
        assert "permission denied" in outcome or "must be owner" in outcome, (attempt, outcome)
