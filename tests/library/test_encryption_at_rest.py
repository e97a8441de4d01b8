"""Encryption at rest through the product's own path: documents uploaded and ingested (real
parser child, embedder, index, PostgreSQL), then the stored files, the chunk rows and a
pg_dump of the database read directly, finding none of their sentences, while the portal and
the API still answer with them; then a key rotation with the old key dropped afterwards."""

from __future__ import annotations

import base64
import secrets
import subprocess
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client

from kb.accounts.models import Membership
from kb.answering.models import Feedback, Turn
from kb.audit.models import AuditRecord
from kb.library.encryption import DecryptionError, keyring
from kb.library.models import Chunk, Collection, DocumentVersion
from kb.library.rotation import PLAIN, encryption_status
from tests.api.conftest import api, service_account, token_for
from tests.ingesting import ingest_text

pytestmark = [pytest.mark.usefixtures("fresh_index"), pytest.mark.django_db(transaction=True)]

ENGLISH = "The quartermaster of the violet lighthouse signs every invoice above 73,000 euros."
CHINESE = "紫色灯塔的军需官负责签署所有超过七万三千欧元的发票。"
SECRETS = [
    ENGLISH,
    CHINESE,
    "violet lighthouse",
    "quartermaster",
    "紫色灯塔",
    "军需官",
]


def new_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def stored_bytes() -> bytes:
    root = Path(django_settings.MEDIA_ROOT)
    return b"".join(path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file())


def chunk_rows() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT text FROM library_chunk")
        return [row[0] for row in cursor.fetchall()]


def database_dump(*options: str) -> bytes:
    db = connection.settings_dict
    env = {"PGHOST": db["HOST"] or "", "PGPORT": str(db["PORT"] or ""), "PGUSER": db["USER"]}
    if db["PASSWORD"]:
        env["PGPASSWORD"] = db["PASSWORD"]
    return subprocess.run(
        ["pg_dump", "--format=plain", "--data-only", *options, "--dbname", db["NAME"]],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        check=True,
    ).stdout


def backup_contents(folder: Path) -> list[bytes]:
    """Every file of a backup as stored, and its database dump restored to plain SQL."""
    contents = [path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()]
    dump = folder / "database.dump"
    assert dump.is_file()
    contents.append(
        subprocess.run(
            ["pg_restore", "--data-only", "--file=-", str(dump)],
            env={"PATH": "/usr/bin:/bin"},
            capture_output=True,
            check=True,
        ).stdout
    )
    return contents


def assert_no_plaintext(*places: bytes) -> None:
    for place in places:
        for sentence in SECRETS:
            assert sentence.encode("utf-8") not in place, sentence


def assert_everything_reads(client: Client, token: str, documents: dict[str, int]) -> None:
    page = client.get(f"/documents/{documents['en']}/").content.decode()
    assert ENGLISH in page
    page = client.get(f"/documents/{documents['zh']}/").content.decode()
    assert CHINESE in page
    found = client.get("/search/", {"q": "quartermaster violet lighthouse invoice"})
    assert ENGLISH in found.content.decode()
    passages = api(token).post("/api/v1/search", {"query": "紫色灯塔 军需官"}, format="json")
    assert passages.status_code == 200
    assert any(CHINESE in p["text"] for p in passages.json()["passages"])
    for key, original in ORIGINALS.items():
        download = client.get(f"/documents/{documents[key]}/download/")
        assert download.status_code == 200
        assert b"".join(download.streaming_content) == original  # type: ignore[attr-defined]
        assert int(download["Content-Length"]) == len(original)
    api_download = api(token).get(f"/api/v1/documents/{documents['zh']}/download")
    assert b"".join(api_download.streaming_content) == ORIGINALS["zh"]  # type: ignore[attr-defined]


ORIGINALS = {
    "en": f"Procurement memo\n\n{ENGLISH}\n\nOther approvals follow the usual chain.\n".encode(),
    "zh": f"# 采购备忘\n\n{CHINESE}\n\n其他审批按常规流程办理。\n".encode(),
}


def test_nothing_is_stored_in_the_clear_and_rotation_keeps_everything_readable(
    alice: User, finance_collection: Collection, settings: pytest.FixtureRequest, tmp_path: Path
) -> None:
    old_key = new_key()
    settings.KB_MASTER_KEY = old_key  # type: ignore[attr-defined]
    settings.KB_MASTER_KEYS_PREVIOUS = []  # type: ignore[attr-defined]
    old_id = keyring().current.key_id
    documents = {
        "en": ingest_text(finance_collection, "memo.txt", ORIGINALS["en"].decode()),
        "zh": ingest_text(finance_collection, "备忘.md", ORIGINALS["zh"].decode()),
    }
    assert Chunk.objects.count() >= 2

    # Stored files, chunk rows and the whole database hold no sentence of either document.
    assert_no_plaintext(stored_bytes(), "\n".join(chunk_rows()).encode(), database_dump())
    assert all(row.startswith(f"kbenc:1:{old_id}:") for row in chunk_rows())

    client = Client()
    client.force_login(alice)
    # A conversation about them: the extractive answer quotes the passage, the feedback
    # comment quotes the answer. (The question names no secret: the audit trail keeps
    # questions in plain for auditors, by design.)
    page = client.post("/", {"question": "Who signs the invoices above 73,000 euros?"})
    assert ENGLISH in page.content.decode()  # the reader sees it in plain
    turn = Turn.objects.get()
    assert ENGLISH in turn.answer and turn.conversation.title.startswith("Who signs")
    feedback = client.post(
        f"/answers/{turn.pk}/feedback/", {"rating": "-1", "comment": f"Not {ENGLISH}"}
    )
    assert feedback.status_code in (200, 302)
    assert Feedback.objects.get().comment == f"Not {ENGLISH}"
    history = client.get("/conversations/", {"q": "invoices above 73,000"}).content.decode()
    assert "Who signs the invoices" in history  # searchable for its owner, in Python
    # The API keeps the first response to an Idempotency-Key for replay: an answer, which
    # quotes the passages.
    asker = token_for(service_account("finance-bot", finance_collection.department), ["ask"])
    for _ in range(2):
        replayable = api(asker).post(
            "/api/v1/ask", {"question": "Who signs the invoices above 73,000 euros?"},
            format="json", HTTP_IDEMPOTENCY_KEY="ask-once",
        )  # fmt: skip
        assert ENGLISH in replayable.content.decode()
    assert replayable["Idempotent-Replayed"] == "true"
    # Every table of the database, and a backup archive, hold none of it in the clear.
    backup = tmp_path / "backup"
    call_command("backup", str(backup))
    assert_no_plaintext(database_dump(), *backup_contents(backup))
    with connection.cursor() as cursor:
        cursor.execute("SELECT question, answer FROM portal_turn")
        assert all(value.startswith("kbenc:1:") for value in cursor.fetchone())
    token = token_for(
        service_account("finance-erp", finance_collection.department, Membership.Role.CURATOR),
        ["search"],
    )
    assert_everything_reads(client, token, documents)

    # A row and a file written before encryption was switched on are read as they are.
    legacy = Chunk.objects.filter(document_id=documents["en"]).order_by("pk").first()
    assert legacy is not None
    with connection.cursor() as cursor:
        cursor.execute("UPDATE library_chunk SET text = %s WHERE id = %s", [legacy.text, legacy.pk])
    version = DocumentVersion.objects.get(document_id=documents["zh"])
    Path(version.original.path).write_bytes(ORIGINALS["zh"])
    usage = encryption_status()
    assert usage.chunks[PLAIN] == 1 and usage.files[PLAIN] == 1
    with pytest.raises(CommandError, match="not everything is under the current key"):
        call_command("encryption", "status")
    assert_everything_reads(client, token, documents)

    # Rotate: the new key writes, the old one is still accepted for reading meanwhile.
    settings.KB_MASTER_KEY = new_key()  # type: ignore[attr-defined]
    settings.KB_MASTER_KEYS_PREVIOUS = [old_key]  # type: ignore[attr-defined]
    new_id = keyring().current.key_id
    assert_everything_reads(client, token, documents)  # readers keep working mid-rotation
    call_command("encryption", "rotate")
    call_command("encryption", "rotate")  # nothing left to do: harmless
    rotated = AuditRecord.objects.filter(action="encryption.rotated").order_by("seq")
    assert [r.details["chunks"] for r in rotated] == [Chunk.objects.count(), 0]
    # The portal's and the API's conversations (title, question, search query, answer
    # each), the comment and the stored API response.
    assert [r.details["texts"] for r in rotated] == [10, 0]
    assert rotated[0].details["files"] == 2 and rotated[0].outcome == "success"
    assert AuditRecord.objects.filter(action="encryption.rotation_started").count() == 2

    # The old key is gone: everything reads, all under the new key id, still nothing in the clear.
    settings.KB_MASTER_KEYS_PREVIOUS = []  # type: ignore[attr-defined]
    usage = encryption_status()
    assert dict(usage.chunks) == {new_id: Chunk.objects.count()}
    assert dict(usage.texts) == {new_id: 10}
    assert Turn.objects.get(pk=turn.pk).answer == turn.answer  # read back under the new key
    assert dict(usage.files) == {new_id: 2}
    call_command("encryption", "status")
    # The library's tables only: the audit trail now holds the searches made above, in clear.
    library = database_dump("--table=library_*")
    assert b"COPY public.library_chunk" in library
    assert_no_plaintext(stored_bytes(), "\n".join(chunk_rows()).encode(), library)
    assert_everything_reads(client, token, documents)

    # Only the old key: a clear error naming the key id the data needs, never garbage.
    settings.KB_MASTER_KEY = old_key  # type: ignore[attr-defined]
    with pytest.raises(DecryptionError, match=f"key id {new_id}.*KB_MASTER_KEYS_PREVIOUS"):
        list(Chunk.objects.all())
    with pytest.raises(DecryptionError, match=f"key id {new_id}"):
        version.original.open("rb")
