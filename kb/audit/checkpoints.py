"""Signed checkpoints of the audit chain, written outside the database.

A checkpoint says "record #N had hash H at time T", signed with an Ed25519 key that lives on
disk, not in the database. Someone who can rewrite the database (and so the whole chain and
its head row) cannot produce a matching signature, and cannot unwrite the checkpoint file if
it is shipped elsewhere (AUDIT_CHECKPOINT_DIR on other storage, or to the SIEM). The verifier
uses checkpoints to find truncation and rewrites the chain alone cannot show.

The file is JSON lines, one checkpoint per line, with the public key beside it
(`audit-signing-key.pub`), so anyone can check the signatures without this product.

The tail is anchored continuously: every transaction that writes audit records signs the new
head as soon as it commits (`anchor_after_commit`, from kb/audit/trail.py record). Deleting the
newest records and rewinding the head is then caught by `audit verify` unless it happens in
the moment between a commit and its checkpoint (milliseconds; README, *Audit trail*), or
between a crash and restart of the very process that committed. The periodic checkpoint
(AUDIT_CHECKPOINT_SECONDS) stays as the backstop for that case.
"""

from __future__ import annotations

import base64
import fcntl
import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings

from kb.audit.chain import canonical_json
from kb.audit.models import AuditChainHead

logger = logging.getLogger("kb.audit")

CHECKPOINT_FILE = "checkpoints.jsonl"
LOCK_FILE = ".checkpoints.lock"
PUBLIC_KEY_FILE = "audit-signing-key.pub"


def _key_path() -> Path:
    return Path(settings.AUDIT_SIGNING_KEY_FILE)


def signing_key() -> Ed25519PrivateKey:
    """The installation's signing key, created (readable by its owner only) on first use."""
    path = _key_path()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pem)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise RuntimeError(f"{path} is not an Ed25519 private key")
    return loaded


def _public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def checkpoint_dir() -> Path:
    return Path(settings.AUDIT_CHECKPOINT_DIR)


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    at: str


def _last_seq(path: Path) -> int:
    """The seq of the file's last checkpoint (read from its end: the file only grows)."""
    if not path.exists():
        return 0
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 4096))
        lines = [line for line in handle.read().splitlines() if line.strip()]
    return int(json.loads(lines[-1])["seq"]) if lines else 0


def write_checkpoint() -> Checkpoint | None:
    """Sign the current head of the chain and append it to the checkpoint file. Nothing is
    written if a checkpoint at or past the head is there already.

    Processes take turns (an exclusive lock on a file beside it), so checkpoints are
    written in order and none twice."""
    directory = checkpoint_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / LOCK_FILE).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        head = AuditChainHead.objects.filter(pk=1).first()
        if head is None or head.seq == 0:
            return None
        path = directory / CHECKPOINT_FILE
        if _last_seq(path) >= head.seq:
            return None
        key = signing_key()
        body = {"seq": head.seq, "hash": head.hash, "at": datetime.now(UTC).isoformat()}
        signature = key.sign(canonical_json(body).encode("utf-8"))
        public = directory / PUBLIC_KEY_FILE
        if not public.exists():
            public.write_bytes(_public_pem(key.public_key()))
        line = canonical_json({**body, "sig": base64.b64encode(signature).decode("ascii")})
        with path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    return Checkpoint(seq=head.seq, hash=head.hash, at=str(body["at"]))


def anchor_after_commit() -> None:
    """Sign the head now that a transaction with audit records committed (see the module
    docstring). A failure is logged, never raised: the request that was audited stands, and
    the periodic checkpoint anchors the tail later."""
    if not settings.AUDIT_ANCHOR_EACH_COMMIT:
        return
    try:
        write_checkpoint()
    except Exception:
        logger.exception("could not anchor the audit trail's tail; the periodic checkpoint will")


class CheckpointSignatureError(RuntimeError):
    pass


def read_checkpoints(verify_signatures: bool = True) -> list[dict[str, Any]]:
    """The exported checkpoints, oldest first; a bad signature is an error, not a skip."""
    path = checkpoint_dir() / CHECKPOINT_FILE
    if not path.exists():
        return []
    public_key = signing_key().public_key() if verify_signatures else None
    entries: list[dict[str, Any]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        entry = json.loads(line)
        if public_key is not None:
            body = {name: entry[name] for name in ("seq", "hash", "at")}
            try:
                public_key.verify(
                    base64.b64decode(entry["sig"]), canonical_json(body).encode("utf-8")
                )
            except (InvalidSignature, KeyError, ValueError) as exc:
                raise CheckpointSignatureError(
                    f"{path} line {number}: the signature does not match"
                ) from exc
        entries.append(entry)
    return entries
