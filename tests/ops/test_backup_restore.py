"""`manage.py backup` then `manage.py restore` into a fresh PostgreSQL database, index and
files directory: the restored installation answers the same question the same way, its audit
trail verifies with the same records, and its index holds a point for every passage."""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.core.management import call_command

from kb.audit.checkpoints import read_checkpoints, write_checkpoint
from kb.audit.trail import record
from kb.audit.verify import verify
from kb.library.models import Chunk, Collection
from tests.asking import answer_question
from tests.ingesting import ingest_text

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
QUESTION = "Who approves invoices above 50,000 EUR?"

ASK = """
import json
from django.contrib.auth.models import User
from kb.ops.backup import check_index, restored_checkpoints
from kb.audit.verify import verify
from tests.asking import answer_question
report = verify(restored_checkpoints())
points, live, index_ok = check_index()
answer = answer_question(User.objects.get(username="alice"), QUESTION)
print("RESULT " + json.dumps({
    "text": answer.text, "mode": answer.mode, "titles": [s.title for s in answer.sources],
    "audit_ok": report.ok, "audit_records": report.records, "points": points,
    "live": live, "index_ok": index_ok,
}))
""".replace("QUESTION", repr(QUESTION))


def _admin_connection() -> psycopg.Connection[tuple[object, ...]]:
    db = django_settings.DATABASES["default"]
    return psycopg.connect(
        host=db.get("HOST") or "127.0.0.1",
        port=int(db.get("PORT") or 5432),
        user=db.get("USER") or "postgres",
        password=db.get("PASSWORD") or None,
        dbname="postgres",
        autocommit=True,
    )


@pytest.fixture
def restore_database() -> Iterator[str]:
    name = f"kb_restore_{secrets.token_hex(4)}"
    with _admin_connection() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with _admin_connection() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def installation(tmp_path: Path, settings: object, fresh_index: None) -> Path:
    """This test's own files and checkpoint directories (the index is `fresh_index`'s)."""
    original = tmp_path / "original"
    settings.MEDIA_ROOT = original / "files"  # type: ignore[attr-defined]
    settings.AUDIT_CHECKPOINT_DIR = original / "audit" / "checkpoints"  # type: ignore[attr-defined]
    settings.AUDIT_SIGNING_KEY_FILE = original / "audit" / "signing-key.pem"  # type: ignore[attr-defined]
    return original


def _env(database: str, data: Path) -> dict[str, str]:
    db = django_settings.DATABASES["default"]
    user = db.get("USER") or "postgres"
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"postgres://{user}@{host}:{port}/{database}",
        KB_DATA_DIR=str(data),
        QDRANT_EDGE_PATH=str(data / "qdrant-edge"),
        KB_FILES_DIR=str(data / "files"),
        AUDIT_CHECKPOINT_DIR=str(data / "audit" / "checkpoints"),
        AUDIT_SIGNING_KEY_FILE=str(data / "audit" / "signing-key.pem"),
        # The documents in the backup are encrypted: restoring needs the same master key.
        KB_MASTER_KEY=django_settings.KB_MASTER_KEY,
        HF_HUB_OFFLINE="1",
    )
    env.pop("KB_MASTER_KEY_FILE", None)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _table_count(database: str) -> int:
    db = django_settings.DATABASES["default"]
    with psycopg.connect(
        host=db.get("HOST") or "127.0.0.1",
        port=int(db.get("PORT") or 5432),
        user=db.get("USER") or "postgres",
        password=db.get("PASSWORD") or None,
        dbname=database,
    ) as conn:
        row = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    return int(row[0]) if row else 0


def test_backup_then_restore_into_a_fresh_installation(
    installation: Path,
    tmp_path: Path,
    alice: User,
    finance_collection: Collection,
    restore_database: str,
) -> None:
    ingest_text(
        finance_collection,
        "invoice-approval.txt",
        "Invoice approval policy.\n\nInvoices above 50,000 EUR are approved by the Chief "
        "Financial Officer. Smaller invoices are approved by the head of the department.",
    )
    ingest_text(
        finance_collection,
        "travel.txt",
        "Travel policy.\n\nTrain travel is booked in second class. Hotels up to 150 EUR a night.",
    )
    before = answer_question(alice, QUESTION)
    assert before.mode == "extractive" and before.sources
    record("audit.verified", details={"note": "before backup"})
    record("audit.exported", details={"note": "before backup"})
    write_checkpoint()  # each commit anchored the tail already; this adds nothing new
    expected = verify(read_checkpoints())
    assert expected.ok and expected.checkpoints >= 1
    assert int(read_checkpoints()[-1]["seq"]) == expected.last_seq
    chunks = Chunk.objects.count()

    backup_dir = tmp_path / "backup"
    call_command("backup", str(backup_dir))
    manifest = json.loads((backup_dir / "manifest.json").read_text())
    assert manifest["counts"]["documents"] == 2
    assert manifest["index"]["kind"] == "qdrant-edge"
    assert "audit/audit-signing-key.pub" in manifest["files"]
    assert not any("signing-key.pem" in name for name in manifest["files"])
    assert sum(n.startswith("files/") for n in manifest["files"]) == 2

    restored = tmp_path / "restored"
    env = _env(restore_database, restored)

    # A corrupted backup is refused before anything is touched.
    corrupted = tmp_path / "corrupted"
    shutil.copytree(backup_dir, corrupted)
    victim = next(p for p in (corrupted / "files").rglob("*") if p.is_file())
    data = bytearray(victim.read_bytes())
    data[0] ^= 0xFF
    victim.write_bytes(bytes(data))
    refused = _manage(env, "restore", str(corrupted))
    assert refused.returncode != 0
    assert "the backup is corrupted" in refused.stderr
    assert "does not match its SHA-256" in refused.stderr
    assert _table_count(restore_database) == 0

    # The backup carries ciphertext; without the master key it was made with, it is refused
    # before anything is touched.
    assert not any(
        b"Chief Financial Officer" in p.read_bytes()
        for p in (backup_dir / "files").rglob("*")
        if p.is_file()
    )
    assert len(manifest["encryption"]["key_ids"]) == 1
    another_key = base64.b64encode(secrets.token_bytes(32)).decode()
    other_key = _manage({**env, "KB_MASTER_KEY": another_key}, "restore", str(backup_dir))
    assert other_key.returncode != 0
    assert manifest["encryption"]["key_ids"][0] in other_key.stderr
    assert "which this installation does not have" in other_key.stderr
    assert _table_count(restore_database) == 0

    # The same backup as one .tar is what is restored.
    archive = tmp_path / "backup.tar"
    call_command("backup", str(archive))
    done = _manage(env, "restore", str(archive))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"OK: {expected.records} records" in done.stdout
    assert "Index (snapshot)" in done.stdout and "match" in done.stdout
    assert "signing key" in done.stderr  # the private key must be put back by hand

    asked = _manage(env, "shell", "-c", ASK)
    assert asked.returncode == 0, asked.stdout + asked.stderr
    result = json.loads(asked.stdout.split("RESULT ", 1)[1])
    assert result["text"] == before.text
    assert result["titles"] == [s.title for s in before.sources]
    assert result["audit_ok"] is True and result["audit_records"] == expected.records
    assert result["points"] == result["live"] == chunks and result["index_ok"] is True

    # The restored installation is no longer empty: a second restore is refused.
    again = _manage(env, "restore", str(backup_dir))
    assert again.returncode != 0
    assert "not empty" in again.stderr
