"""Encryption at rest for stored originals and chunk texts (AES-256-GCM).

Keys. One master key (32 random bytes: `KB_MASTER_KEY` or `KB_MASTER_KEY_FILE`, in the
embedded default generated once into KB_DATA_DIR/master_key) never encrypts anything itself:
HKDF-SHA256 derives from it one key for originals and one for chunk texts, each under its own
label, and a key id (8 bytes, not secret) that every ciphertext carries, so a reader knows
which master key wrote it. `KB_MASTER_KEYS_PREVIOUS` lists retired master keys that are still
accepted for reading: that is what lets `manage.py encryption rotate` re-encrypt while the
portal and the workers keep running.

Originals. A stored file is a header (magic, format version, key id, a random 16-byte salt)
followed by 1 MiB segments, each sealed with AES-GCM under a per-file key derived from the
originals key and the salt, its nonce the segment's number and a last-segment flag (the
STREAM construction): segments cannot be reordered, dropped or cut off unnoticed, and a file
can be streamed or read at any offset without holding it in memory. The associated data binds
the header and the stored name, so a ciphertext copied over another document's file fails to
decrypt instead of serving the wrong document.

Chunk texts. `kbenc:1:<key id>:<base64(nonce || ciphertext)>` in the same text column, a
fresh random 96-bit nonce each time, the purpose bound as associated data. Rows written before
encryption (plain text) are read as they are and encrypted by `encryption rotate`.

A wrong or missing key is an error naming the key id and the variables, never garbage.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.files.base import File
from django.core.files.storage import FileSystemStorage
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils.deconstruct import deconstructible

FILE_MAGIC = b"KBENC"
FORMAT_VERSION = 1
KEY_ID_BYTES = 8
SALT_BYTES = 16
HEADER_BYTES = len(FILE_MAGIC) + 1 + KEY_ID_BYTES + SALT_BYTES
SEGMENT_BYTES = 1024 * 1024
TAG_BYTES = 16
NONCE_BYTES = 12
TEXT_PREFIX = "kbenc:1:"

_FILES_LABEL = b"kb/originals/v1"
_TEXTS_LABEL = b"kb/chunk-text/v1"
_KEY_ID_LABEL = b"kb/key-id/v1"
_SEGMENT_LABEL = b"kb/original-segments/v1"

_KEY_VARIABLES = "KB_MASTER_KEY (or KB_MASTER_KEY_FILE) and KB_MASTER_KEYS_PREVIOUS"


class DecryptionError(RuntimeError):
    """A stored value cannot be decrypted: unknown key, damaged, or moved from elsewhere."""


def _hkdf(secret: bytes, label: bytes, length: int = 32, salt: bytes | None = None) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=label).derive(secret)


def parse_master_key(value: str, variable: str = "KB_MASTER_KEY") -> bytes:
    """The 32 bytes of a base64-written master key; a bad value names its variable."""
    text = value.strip()
    raw = b""
    for altchars in (None, b"-_"):  # standard or URL-safe alphabet
        try:
            raw = base64.b64decode(text, altchars=altchars, validate=True)
            break
        except (binascii.Error, ValueError):
            continue
    if len(raw) != 32:
        raise ValueError(
            f"{variable} must be 32 random bytes in base64 (44 characters), e.g. from: python "
            '-c "import base64,os; print(base64.b64encode(os.urandom(32)).decode())"'
        )
    return raw


@dataclass(frozen=True)
class MasterKey:
    key_id: str  # hex, safe to show and to store
    files_key: bytes
    texts: AESGCM

    @classmethod
    def from_bytes(cls, raw: bytes) -> MasterKey:
        return cls(
            key_id=_hkdf(raw, _KEY_ID_LABEL, KEY_ID_BYTES).hex(),
            files_key=_hkdf(raw, _FILES_LABEL),
            texts=AESGCM(_hkdf(raw, _TEXTS_LABEL)),
        )


@dataclass(frozen=True)
class Keyring:
    current: MasterKey
    by_id: dict[str, MasterKey]

    def get(self, key_id: str) -> MasterKey:
        key = self.by_id.get(key_id)
        if key is None:
            raise DecryptionError(
                f"stored data is encrypted under key id {key_id}, which is not among the "
                f"configured master keys (current {self.current.key_id}); set the key that "
                f"wrote it in {_KEY_VARIABLES}"
            )
        return key


@lru_cache(maxsize=4)
def _keyring(current: str, previous: tuple[str, ...]) -> Keyring:
    master = MasterKey.from_bytes(parse_master_key(current))
    by_id = {master.key_id: master}
    for value in previous:
        key = MasterKey.from_bytes(parse_master_key(value, "KB_MASTER_KEYS_PREVIOUS"))
        by_id.setdefault(key.key_id, key)
    return Keyring(master, by_id)


def keyring() -> Keyring:
    """The configured keys (settings may change under tests, hence the cache key)."""
    return _keyring(settings.KB_MASTER_KEY, tuple(settings.KB_MASTER_KEYS_PREVIOUS))


# --- chunk texts ---------------------------------------------------------------------------


def encrypt_text(plaintext: str) -> str:
    key = keyring().current
    nonce = secrets.token_bytes(NONCE_BYTES)
    sealed = key.texts.encrypt(nonce, plaintext.encode("utf-8"), _TEXTS_LABEL)
    return f"{TEXT_PREFIX}{key.key_id}:{base64.b64encode(nonce + sealed).decode('ascii')}"


def text_key_id(stored: str) -> str | None:
    """The key id a stored text is encrypted under; None for plain (legacy) text."""
    if not stored.startswith(TEXT_PREFIX):
        return None
    return stored[len(TEXT_PREFIX) : len(TEXT_PREFIX) + 2 * KEY_ID_BYTES]


def decrypt_text(stored: str) -> str:
    key_id = text_key_id(stored)
    if key_id is None:
        return stored
    body = stored[len(TEXT_PREFIX) + 2 * KEY_ID_BYTES + 1 :]
    try:
        blob = base64.b64decode(body, validate=True)
        plain = (
            keyring()
            .get(key_id)
            .texts.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _TEXTS_LABEL)
        )
    except (binascii.Error, ValueError, InvalidTag) as exc:
        raise DecryptionError(
            f"a chunk text under key id {key_id} fails authentication: it is damaged, or the "
            f"master key with that id is not the one that wrote it ({_KEY_VARIABLES})"
        ) from exc
    return plain.decode("utf-8")


class EncryptedTextField(models.TextField):  # type: ignore[type-arg]  # TextField[...] needs django-stubs-ext's runtime patch
    """A text column whose values are stored encrypted; the ORM sees plain text.

    Nothing may look inside it in SQL (contains, search, length): the database holds only
    ciphertext. Pattern lookups (`startswith`) see the stored form, which is what
    `encryption status` and `rotate` use to find values by key id.
    """

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt_text(str(value))

    def from_db_value(self, value: Any, expression: Any, connection: BaseDatabaseWrapper) -> Any:
        if value is None:
            return value
        return decrypt_text(value)


class EncryptedJSONField(EncryptedTextField):
    """A JSON value stored encrypted (as its JSON text): for stored copies of responses
    that quote passages, such as the API's replayed answers."""

    def get_prep_value(self, value: Any) -> Any:
        if value is None:
            return None
        return super().get_prep_value(json.dumps(value, cls=DjangoJSONEncoder))

    def from_db_value(self, value: Any, expression: Any, connection: BaseDatabaseWrapper) -> Any:
        text = super().from_db_value(value, expression, connection)
        return None if text is None or text == "" else json.loads(text)


# --- originals -----------------------------------------------------------------------------


def _segment_nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(NONCE_BYTES - 1, "big") + (b"\x01" if last else b"\x00")


def _associated(header: bytes, name: str) -> bytes:
    return header + b"\x00" + name.encode("utf-8")


def _file_cipher(master: MasterKey, salt: bytes) -> AESGCM:
    return AESGCM(_hkdf(master.files_key, _SEGMENT_LABEL, salt=salt))


def encrypt_stream(source: IO[bytes], name: str) -> Iterator[bytes]:
    """The encrypted form of `source`, bound to the stored `name`, in pieces."""
    master = keyring().current
    salt = secrets.token_bytes(SALT_BYTES)
    header = FILE_MAGIC + bytes([FORMAT_VERSION]) + bytes.fromhex(master.key_id) + salt
    cipher = _file_cipher(master, salt)
    associated = _associated(header, name)
    yield header
    index = 0
    segment = source.read(SEGMENT_BYTES)
    while True:
        # Read one ahead: the last segment is sealed differently, so a cut-off file shows.
        following = source.read(SEGMENT_BYTES) if len(segment) == SEGMENT_BYTES else b""
        last = not following
        yield cipher.encrypt(_segment_nonce(index, last), segment, associated)
        if last:
            return
        segment, index = following, index + 1


def file_key_id(head: bytes) -> str | None:
    """The key id in a stored file's first bytes; None for a plain (legacy) file."""
    if len(head) < HEADER_BYTES or not head.startswith(FILE_MAGIC):
        return None
    return head[len(FILE_MAGIC) + 1 : len(FILE_MAGIC) + 1 + KEY_ID_BYTES].hex()


class DecryptingReader(io.RawIOBase):
    """Reads the plaintext of an encrypted stored file, one authenticated segment at a time."""

    def __init__(self, raw: IO[bytes], name: str) -> None:
        super().__init__()
        self._raw = raw
        header = raw.read(HEADER_BYTES)
        key_id = file_key_id(header)
        if key_id is None or header[len(FILE_MAGIC)] != FORMAT_VERSION:
            raise DecryptionError(f"stored file {name} is not in a known encrypted format")
        self._cipher = _file_cipher(keyring().get(key_id), header[-SALT_BYTES:])
        self._associated = _associated(header, name)
        self._name = name
        body = os.fstat(raw.fileno()).st_size - HEADER_BYTES
        sealed = SEGMENT_BYTES + TAG_BYTES
        self._segments = max(1, -(-body // sealed))
        if body < TAG_BYTES or body - (self._segments - 1) * sealed < TAG_BYTES:
            raise DecryptionError(f"stored file {name} is cut off")
        self.size = body - self._segments * TAG_BYTES
        self._position = 0
        self._cached: tuple[int, bytes] = (-1, b"")

    def _segment(self, index: int) -> bytes:
        if self._cached[0] != index:
            self._raw.seek(HEADER_BYTES + index * (SEGMENT_BYTES + TAG_BYTES))
            sealed = self._raw.read(SEGMENT_BYTES + TAG_BYTES)
            last = index == self._segments - 1
            try:
                plain = self._cipher.decrypt(_segment_nonce(index, last), sealed, self._associated)
            except InvalidTag as exc:
                raise DecryptionError(
                    f"stored file {self._name} fails authentication (segment {index}): it is "
                    "damaged, was moved from another name, or the master key with its id is "
                    f"not the one that wrote it ({_KEY_VARIABLES})"
                ) from exc
            self._cached = (index, plain)
        return self._cached[1]

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._position = base + offset
        return self._position

    def readinto(self, buffer: Any) -> int:
        if self._position >= self.size:
            return 0
        index, offset = divmod(self._position, SEGMENT_BYTES)
        piece = self._segment(index)[offset : offset + len(buffer)]
        buffer[: len(piece)] = piece
        self._position += len(piece)
        return len(piece)

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_plaintext(path: Path, name: str) -> IO[bytes]:
    """The stored file at `path` (stored name `name`) as plaintext: decrypted, or as it is
    for a file written before encryption was switched on."""
    raw = path.open("rb")
    try:
        head = raw.read(HEADER_BYTES)
        raw.seek(0)
        if file_key_id(head) is None:
            return raw
        return io.BufferedReader(DecryptingReader(raw, name), buffer_size=64 * 1024)
    except BaseException:
        raw.close()
        raise


def write_encrypted(path: Path, name: str, source: IO[bytes], *, replace: bool) -> None:
    """Write `source` encrypted to `path`. With `replace`, through a temporary name renamed
    over the old file (readers with the old file open keep reading it); without, the file
    must not exist yet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if replace:
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    else:
        temporary = str(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            for piece in encrypt_stream(source, name):
                out.write(piece)
            out.flush()
            os.fsync(out.fileno())
        if replace:
            os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@deconstructible
class EncryptedFileSystemStorage(FileSystemStorage):
    """MEDIA_ROOT storage that encrypts what it saves and decrypts what it opens."""

    def _save(self, name: str, content: File[Any]) -> str:
        content.seek(0)
        write_encrypted(Path(self.path(name)), name, content, replace=False)
        return name.replace("\\", "/")

    def _open(self, name: str, mode: str = "rb") -> File[Any]:
        if mode not in ("r", "rb"):
            raise ValueError("stored originals are opened for reading only")
        return File(open_plaintext(Path(self.path(name)), name), name=name)

    def size(self, name: str) -> int:
        with open_plaintext(Path(self.path(name)), name) as stream:
            return stream.seek(0, io.SEEK_END)


_originals = EncryptedFileSystemStorage()


def originals_storage() -> EncryptedFileSystemStorage:
    """The storage of DocumentVersion.original (a callable, so migrations name no instance)."""
    return _originals


def stored_key_id(name: str) -> str | None:
    """The key id of a stored original; None if it is plain; raises OSError if missing."""
    with Path(_originals.path(name)).open("rb") as raw:
        return file_key_id(raw.read(HEADER_BYTES))


def reencrypt_file(name: str) -> bool:
    """Re-encrypt one stored original under the current key; False if it already was."""
    path = Path(_originals.path(name))
    if stored_key_id(name) == keyring().current.key_id:
        return False
    with open_plaintext(path, name) as source:
        write_encrypted(path, name, source, replace=True)
    return True


@contextmanager
def plaintext_copy(name: str) -> Iterator[Path]:
    """A decrypted copy of a stored original for the parser child, which needs a path.

    It lives in a new private directory (mode 0700, the file 0600) under the system's
    temporary directory (point TMPDIR at a tmpfs to keep it off disk) and is removed as soon
    as the block ends.
    """
    with tempfile.TemporaryDirectory(prefix="kb-parse-") as directory:
        target = Path(directory) / "original"
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out, _originals.open(name, "rb") as source:
            while block := source.read(SEGMENT_BYTES):
                out.write(block)
        yield target


def sha256_of_stored(name: str) -> str:
    """SHA-256 of a stored original's plaintext (what DocumentVersion.sha256 holds)."""
    digest = hashlib.sha256()
    with _originals.open(name, "rb") as source:
        while block := source.read(SEGMENT_BYTES):
            digest.update(block)
    return digest.hexdigest()
