"""Which master key protects what, and re-encryption under the current one (key rotation).

Rotation runs beside the live portal and workers: they read with the current key and the
previous ones (`KB_MASTER_KEYS_PREVIOUS`) and write with the current one, so nothing stops.
Chunk texts are re-encrypted in batches, each in its own transaction with its rows locked;
each original is re-encrypted under its version's row lock (so a concurrent delete waits and
then removes the new file) into a temporary name renamed over the old file. Running it again
finds nothing left to do; once `status` shows everything under the current key id, the old
key can be removed from the configuration.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from django.apps import apps
from django.db import models, transaction
from django.db.models import CharField, Count
from django.db.models.functions import Substr

from kb.audit.trail import record
from kb.library.encryption import (
    KEY_ID_BYTES,
    TEXT_PREFIX,
    DecryptionError,
    EncryptedTextField,
    keyring,
    reencrypt_file,
    stored_key_id,
)
from kb.library.models import Chunk, DocumentVersion

logger = logging.getLogger(__name__)

PLAIN = "plain"
MISSING = "missing"
BATCH = 500


@dataclass
class KeyUsage:
    """Items per key id ("plain": not encrypted; "missing": a stored file that is gone)."""

    current_key_id: str
    chunks: Counter[str] = field(default_factory=Counter)
    files: Counter[str] = field(default_factory=Counter)
    # Every other encrypted text: conversations' questions, answers and titles, feedback.
    texts: Counter[str] = field(default_factory=Counter)

    @property
    def all_current(self) -> bool:
        return all(
            set(counts) <= {self.current_key_id} for counts in (self.chunks, self.files, self.texts)
        )


def encrypted_columns() -> list[tuple[type[models.Model], str]]:
    """Every (model, field) stored through EncryptedTextField, found from the models
    themselves, so a new encrypted column is counted and rotated without being listed."""
    return [
        (model, model_field.name)
        for model in apps.get_models()
        for model_field in model._meta.get_fields()
        if isinstance(model_field, EncryptedTextField)
    ]


def _other_columns() -> list[tuple[type[models.Model], str]]:
    return [(m, f) for m, f in encrypted_columns() if not (m is Chunk and f == "text")]


def _count_heads(model: type[models.Model], column: str, counts: Counter[str]) -> None:
    head = len(TEXT_PREFIX) + 2 * KEY_ID_BYTES
    rows = (
        model._default_manager.exclude(**{column: ""})
        .exclude(**{f"{column}__isnull": True})
        .annotate(head=Substr(column, 1, head, output_field=CharField()))
        .values("head")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for row in rows:
        stored_head: str = row["head"]
        key_id = stored_head[len(TEXT_PREFIX) :] if stored_head.startswith(TEXT_PREFIX) else PLAIN
        counts[key_id] += row["n"]


def encryption_status(*, files: bool = True) -> KeyUsage:
    usage = KeyUsage(keyring().current.key_id)
    # Counted in SQL on the stored form, which is never decrypted here.
    _count_heads(Chunk, "text", usage.chunks)
    for model, column in _other_columns():
        _count_heads(model, column, usage.texts)
    for name in _stored_names() if files else []:
        try:
            usage.files[stored_key_id(name) or PLAIN] += 1
        except OSError:
            usage.files[MISSING] += 1
    return usage


def _stored_names() -> list[str]:
    return list(
        DocumentVersion.objects.exclude(original="")
        .order_by("pk")
        .values_list("original", flat=True)
        .distinct()
    )


@dataclass
class RotationResult:
    key_id: str
    chunks: int = 0
    texts: int = 0
    files: int = 0
    missing_files: list[str] = field(default_factory=list)


def _rotate_column(
    model: type[models.Model], column: str, prefix: str, say: Callable[[str], None]
) -> int:
    """Re-encrypt one encrypted column's values not under `prefix` (the current key), in
    batches, each in its own transaction with its rows locked."""
    manager = model._default_manager
    done = 0
    after = 0
    while True:
        ids = list(
            manager.filter(pk__gt=after)
            .exclude(**{f"{column}__startswith": prefix})
            .exclude(**{column: ""})
            .order_by("pk")
            .values_list("pk", flat=True)[:BATCH]
        )
        if not ids:
            return done
        with transaction.atomic():
            rows = list(
                manager.select_for_update()
                .filter(pk__in=ids)
                .exclude(**{f"{column}__startswith": prefix})
                .order_by("pk")
            )
            # Saving goes through EncryptedTextField, which writes under the current key.
            manager.bulk_update(rows, [column])
        done += len(rows)
        after = ids[-1]
        say(f"  {done} {model._meta.label}.{column} values re-encrypted")


def _rotate_texts(prefix: str, say: Callable[[str], None]) -> int:
    """Every encrypted column but the chunk texts: conversations, feedback."""
    return sum(_rotate_column(model, column, prefix, say) for model, column in _other_columns())


def _rotate_files(current: str, result: RotationResult, say: Callable[[str], None]) -> None:
    versions = list(
        DocumentVersion.objects.exclude(original="").order_by("pk").values_list("pk", flat=True)
    )
    for number, version_id in enumerate(versions, start=1):
        with transaction.atomic():
            version = DocumentVersion.objects.select_for_update().filter(pk=version_id).first()
            if version is None or not version.original.name:
                continue  # deleted meanwhile
            try:
                if stored_key_id(version.original.name) == current:
                    continue
                if reencrypt_file(version.original.name):
                    result.files += 1
            except FileNotFoundError:
                result.missing_files.append(version.original.name)
        if number % 100 == 0:
            say(f"  {number}/{len(versions)} stored files checked")


def rotate_keys(say: Callable[[str], None] = lambda message: None) -> RotationResult:
    """Re-encrypt every chunk text and stored original not under the current master key.

    Audited when it starts and when it ends (with its counts, or the error that stopped it).
    """
    ring = keyring()
    current = ring.current.key_id
    result = RotationResult(current)
    record(
        "encryption.rotation_started",
        target=("master_key", current),
        details={"key_id": current, "readable_key_ids": sorted(ring.by_id)},
    )
    try:
        result.chunks = _rotate_column(Chunk, "text", f"{TEXT_PREFIX}{current}:", say)
        result.texts = _rotate_texts(f"{TEXT_PREFIX}{current}:", say)
        _rotate_files(current, result, say)
    except (DecryptionError, OSError) as exc:
        record(
            "encryption.rotated",
            outcome="failure",
            target=("master_key", current),
            details={
                "key_id": current,
                "chunks": result.chunks,
                "files": result.files,
                "error": str(exc)[:1000],
            },
        )
        raise
    record(
        "encryption.rotated",
        target=("master_key", current),
        details={
            "key_id": current,
            "chunks": result.chunks,
            "texts": result.texts,
            "files": result.files,
            "missing_files": len(result.missing_files),
        },
    )
    logger.info(
        "re-encrypted %d chunk texts and %d files under key %s",
        result.chunks,
        result.files,
        current,
    )
    return result
