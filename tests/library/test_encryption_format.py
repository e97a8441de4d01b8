"""The encrypted formats of stored originals and chunk texts, and how bad keys and damaged or
moved ciphertexts fail."""

from __future__ import annotations

import base64
import io
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.files.base import ContentFile

from kb.library.encryption import (
    HEADER_BYTES,
    SEGMENT_BYTES,
    TAG_BYTES,
    DecryptionError,
    decrypt_text,
    encrypt_text,
    keyring,
    originals_storage,
    stored_key_id,
    text_key_id,
)

ROOT = Path(__file__).resolve().parents[2]


def new_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


@pytest.fixture
def media(tmp_path: Path, settings: pytest.FixtureRequest) -> Path:
    settings.MEDIA_ROOT = tmp_path / "files"  # type: ignore[attr-defined]
    settings.KB_MASTER_KEY = new_key()  # type: ignore[attr-defined]
    settings.KB_MASTER_KEYS_PREVIOUS = []  # type: ignore[attr-defined]
    return tmp_path / "files"


@pytest.mark.parametrize(
    "size", [0, 1, SEGMENT_BYTES - 1, SEGMENT_BYTES, SEGMENT_BYTES + 1, 2 * SEGMENT_BYTES + 7]
)
def test_an_original_round_trips_and_is_not_stored_in_the_clear(media: Path, size: int) -> None:
    data = (b"Invoice approval by the CFO. " * (size // 29 + 1))[:size]
    storage = originals_storage()
    name = storage.save("originals/1/abc", ContentFile(data))
    stored = (media / name).read_bytes()
    assert len(stored) == HEADER_BYTES + size + TAG_BYTES * max(1, -(-size // SEGMENT_BYTES))
    if size > 40:
        assert b"Invoice approval" not in stored
    assert oct((media / name).stat().st_mode & 0o777) == "0o600"
    assert stored_key_id(name) == keyring().current.key_id
    with storage.open(name) as handle:
        assert handle.read() == data
    assert storage.size(name) == size
    if size > 10:
        with storage.open(name) as handle:  # random access, as range requests need
            handle.seek(size - 10)
            assert handle.read() == data[-10:]


def test_a_ciphertext_moved_to_another_name_does_not_decrypt(media: Path) -> None:
    storage = originals_storage()
    first = storage.save("originals/1/first", ContentFile(b"first document"))
    second = storage.save("originals/1/second", ContentFile(b"second document"))
    (media / second).write_bytes((media / first).read_bytes())
    with pytest.raises(DecryptionError, match="fails authentication"), storage.open(second) as f:
        f.read()


def test_a_file_cut_at_a_segment_boundary_is_refused(media: Path) -> None:
    storage = originals_storage()
    name = storage.save("originals/1/long", ContentFile(os.urandom(2 * SEGMENT_BYTES + 5)))
    path = media / name
    path.write_bytes(path.read_bytes()[: HEADER_BYTES + 2 * (SEGMENT_BYTES + TAG_BYTES)])
    with pytest.raises(DecryptionError), storage.open(name) as handle:
        handle.read()


def test_a_flipped_bit_is_refused(media: Path) -> None:
    storage = originals_storage()
    name = storage.save("originals/1/bits", ContentFile(b"x" * 1000))
    path = media / name
    damaged = bytearray(path.read_bytes())
    damaged[HEADER_BYTES + 100] ^= 1
    path.write_bytes(bytes(damaged))
    with pytest.raises(DecryptionError), storage.open(name) as handle:
        handle.read()


def test_a_plain_legacy_original_is_still_read(media: Path) -> None:
    (media / "originals/1").mkdir(parents=True)
    (media / "originals/1/legacy").write_bytes(b"written before encryption")
    assert stored_key_id("originals/1/legacy") is None
    with originals_storage().open("originals/1/legacy") as handle:
        assert handle.read() == b"written before encryption"


def test_chunk_texts_round_trip_and_name_their_key(settings: pytest.FixtureRequest) -> None:
    settings.KB_MASTER_KEY = new_key()  # type: ignore[attr-defined]
    text = "发票超过五万欧元须由财务总监批准。 Invoices above 50,000 EUR need the CFO."
    stored = encrypt_text(text)
    assert "财务" not in stored and "CFO" not in stored
    assert text_key_id(stored) == keyring().current.key_id
    assert encrypt_text(text) != stored  # a fresh nonce each time
    assert decrypt_text(stored) == text
    assert decrypt_text("plain legacy text") == "plain legacy text"


def test_a_wrong_key_is_a_clear_error_never_garbage(
    media: Path, settings: pytest.FixtureRequest
) -> None:
    name = originals_storage().save("originals/1/secret", ContentFile(b"secret"))
    stored_text = encrypt_text("secret text")
    written_by = keyring().current.key_id
    old_key = settings.KB_MASTER_KEY  # type: ignore[attr-defined]
    settings.KB_MASTER_KEY = new_key()  # type: ignore[attr-defined]
    with pytest.raises(DecryptionError, match=f"key id {written_by}.*KB_MASTER_KEY"):
        decrypt_text(stored_text)
    with pytest.raises(DecryptionError, match=f"key id {written_by}"):
        originals_storage().open(name)
    # Listed as a previous key, it reads again.
    settings.KB_MASTER_KEYS_PREVIOUS = [old_key]  # type: ignore[attr-defined]
    assert decrypt_text(stored_text) == "secret text"
    with originals_storage().open(name) as handle:
        assert handle.read() == b"secret"


def test_text_damaged_in_the_database_is_refused(settings: pytest.FixtureRequest) -> None:
    settings.KB_MASTER_KEY = new_key()  # type: ignore[attr-defined]
    stored = encrypt_text("a passage")
    damaged = stored[:-6] + ("AAAA" if not stored.endswith("AAAA==") else "BBBB") + stored[-2:]
    with pytest.raises(DecryptionError, match="fails authentication"):
        decrypt_text(damaged)


PROBE = (
    "import django; django.setup(); from django.conf import settings as s; print(s.KB_MASTER_KEY)"
)


def _start(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KB_MASTER_KEY")}
    clean.update({"DJANGO_SETTINGS_MODULE": "kb.settings", "KB_DATA_DIR": str(tmp_path)}, **env)
    return subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=clean, capture_output=True, text=True
    )


def test_the_embedded_default_generates_one_private_key(tmp_path: Path) -> None:
    first = _start({}, tmp_path)
    assert first.returncode == 0, first.stderr
    key_file = tmp_path / "master_key"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert first.stdout.strip() == key_file.read_text().strip()
    assert _start({}, tmp_path).stdout == first.stdout  # kept, not made again


def test_production_without_a_master_key_refuses_to_start(tmp_path: Path) -> None:
    result = _start({"KB_PRODUCTION": "true", "SECRET_KEY": "y" * 50}, tmp_path)
    assert result.returncode != 0
    assert "KB_MASTER_KEY (or KB_MASTER_KEY_FILE) must be set" in result.stderr
    assert not (tmp_path / "master_key").exists()


@pytest.mark.parametrize(
    ("variable", "value"),
    [("KB_MASTER_KEY", "too-short"), ("KB_MASTER_KEYS_PREVIOUS", "bm90IDMyIGJ5dGVz")],
)
def test_a_malformed_key_is_refused_by_name(tmp_path: Path, variable: str, value: str) -> None:
    result = _start({variable: value}, tmp_path)
    assert result.returncode != 0
    assert f"{variable} must be 32 random bytes in base64" in result.stderr


def test_the_key_may_come_from_a_file(tmp_path: Path) -> None:
    key = new_key()
    (tmp_path / "key").write_text(key + "\n")
    result = _start({"KB_MASTER_KEY_FILE": str(tmp_path / "key")}, tmp_path)
    assert result.stdout.strip() == key


def test_reading_through_a_buffer_gives_the_same_bytes(media: Path) -> None:
    data = os.urandom(SEGMENT_BYTES + 1234)
    name = originals_storage().save("originals/2/x", ContentFile(data))
    out = io.BytesIO()
    with originals_storage().open(name) as handle:
        while block := handle.read(4096):
            out.write(block)
    assert out.getvalue() == data
