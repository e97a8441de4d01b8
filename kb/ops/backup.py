"""Backup and restore of a whole installation: database, stored originals, vector index,
audit checkpoints.

A backup is one directory (or the same directory as an uncompressed .tar when DEST ends in
`.tar`):

    manifest.json                 what is inside, with the size and SHA-256 of every file
    database.dump                 PostgreSQL: pg_dump --format=custom
    database.sqlite3              SQLite: a copy made with sqlite3's backup API
    files/originals/...           the stored originals the database refers to (MEDIA_ROOT)
    index/qdrant-edge/...         embedded index: the live collections' shard directories,
                                  their schema files and aliases.json
    index/qdrant-server/NAME.snapshot   Qdrant server: one snapshot per live collection,
                                  and aliases.json (the aliases to them)
    audit/checkpoints.jsonl       the signed audit checkpoints
    audit/audit-signing-key.pub   the public key that checks them (never the private key)

The index is written and read back through its adapter's `snapshot` and `restore`
(ingest/index/base.py), which decide what those files hold.

Consistency. The embedded index is opened (its shards locked against every other process)
and its writes paused (`paused_writes`) before anything else is read, so nothing can write
to it until the copy is done. The
database is then dumped from one exported snapshot (PostgreSQL `pg_export_snapshot`, passed
to pg_dump with --snapshot), and the list of originals to copy is read in that same
snapshot: every file the dump refers to is in the backup, or the backup fails. Originals are
immutable and stored under opaque unique names, so copying them after the dump is safe.

Restore goes into an empty installation and checks every file against the manifest before it
touches anything (see `restore`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import django
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.management import call_command
from django.db import connection, connections, transaction
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

from ingest.index import INDEX_SCHEMA_VERSION, IndexLocked, MissingCollection, SnapshotRefused
from kb.audit.chain import canonical_json
from kb.audit.checkpoints import (
    CHECKPOINT_FILE,
    PUBLIC_KEY_FILE,
    CheckpointSignatureError,
    checkpoint_dir,
)
from kb.audit.models import AuditRecord
from kb.audit.verify import verify
from kb.library.components import close_index, get_index
from kb.library.encryption import HEADER_BYTES, file_key_id, keyring
from kb.library.indexing import configured_model_differs, rebuild_index, verify_generation
from kb.library.models import Chunk, Document, DocumentVersion, IndexGeneration
from kb.library.rotation import PLAIN, encryption_status

FORMAT = "kb-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PG_DUMP = "database.dump"
SQLITE_COPY = "database.sqlite3"
FILES = "files"
EDGE_INDEX = "index/qdrant-edge"
SERVER_INDEX = "index/qdrant-server"
AUDIT = "audit"
_CHUNK = 1024 * 1024

Say = Callable[[str], None]


class BackupError(RuntimeError):
    """The backup or the restore cannot go on; the message says why."""


def _quiet(message: str) -> None:
    pass


# --- helpers -------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _copy_file(source: Path, target: Path) -> None:
    """Copy through a temporary name, so a crash never leaves a half file under the real one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}-")
    try:
        with source.open("rb") as src, os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(src, out, _CHUNK)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _app_version() -> str:
    try:
        return metadata.version("private-kb")
    except metadata.PackageNotFoundError:
        return "unknown"


def _pg_env() -> dict[str, str]:
    """libpq's variables for the default database: the password never reaches a command line."""
    db = connections["default"].settings_dict
    env = dict(os.environ)
    for key, var in (
        ("HOST", "PGHOST"),
        ("PORT", "PGPORT"),
        ("USER", "PGUSER"),
        ("PASSWORD", "PGPASSWORD"),
        ("NAME", "PGDATABASE"),
    ):
        value = db.get(key)
        if value:
            env[var] = str(value)
        else:
            env.pop(var, None)
    options = db.get("OPTIONS") or {}
    for key, var in (
        ("sslmode", "PGSSLMODE"),
        ("sslrootcert", "PGSSLROOTCERT"),
        ("sslcert", "PGSSLCERT"),
        ("sslkey", "PGSSLKEY"),
    ):
        if options.get(key):
            env[var] = str(options[key])
    return env


def _run(argv: list[str], what: str) -> None:
    # Fixed argv of PostgreSQL's own client tools; the password travels in PGPASSWORD.
    result = subprocess.run(  # noqa: S603
        argv, env=_pg_env(), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise BackupError(f"{what} failed (exit {result.returncode}): {result.stderr.strip()}")


def _applied_migrations() -> dict[str, list[str]]:
    applied: dict[str, list[str]] = {}
    for app, name in sorted(MigrationRecorder(connection).applied_migrations()):
        applied.setdefault(app, []).append(name)
    return applied


def _public_key_fingerprint(pem: bytes) -> str:
    return "sha256:" + hashlib.sha256(pem).hexdigest()


# --- backup --------------------------------------------------------------------------------


@dataclass
class BackupResult:
    path: Path
    manifest: dict[str, Any]


def _live_collections() -> list[str]:
    return list(
        IndexGeneration.objects.filter(
            state__in=[IndexGeneration.State.ACTIVE, IndexGeneration.State.BUILDING]
        )
        .order_by("id")
        .values_list("collection_name", flat=True)
    )


@contextmanager
def _held_index(say: Say) -> Iterator[list[str] | None]:
    """Open every live collection and hold the index's writes still until the copy is done:
    the live collections that exist. An embedded index's open collections are locked
    against every other process too; None when another process (a running portal) holds
    them, and then the backup holds no index."""
    names = _live_collections()
    with ExitStack() as stack:
        held: list[str] | None
        try:
            held = stack.enter_context(get_index().paused_writes(names))
        except IndexLocked as exc:
            say(f"  WARNING: {exc}; the backup will hold no index and restore will rebuild it")
            held = None
        else:
            for name in names:
                if name not in held:
                    say(f"  index collection {name} is missing: not in the backup")
        yield held


def _backup_index(work: Path, say: Say, held: list[str] | None) -> dict[str, Any]:
    """A snapshot of the held collections: the embedded index's shard directories, or a
    Qdrant server's collection snapshots (see the module docstring)."""
    if held is None:
        return {"kind": None, "note": "the index was held by another process: rebuild on restore"}
    embedded = not settings.QDRANT_URL
    index = get_index()
    index.snapshot(held, work / (EDGE_INDEX if embedded else SERVER_INDEX))
    collections: dict[str, Any] = {}
    for name in held:
        collections[name] = {
            "points": index.count(name),
            "schema_version": index.schema_version(name),
        }
        if not embedded:
            say(f"  snapshot of {name}: {collections[name]['points']} points")
    return {
        "kind": "qdrant-edge" if embedded else "qdrant-server",
        "schema_version": INDEX_SCHEMA_VERSION,
        "collections": collections,
    }


def _chunk_key_ids() -> list[str]:
    return sorted(k for k in encryption_status(files=False).chunks if k != PLAIN)


def _file_key_ids(root: Path) -> set[str]:
    found = set()
    for path in root.rglob("*") if root.is_dir() else ():
        if path.is_file():
            with path.open("rb") as handle:
                key_id = file_key_id(handle.read(HEADER_BYTES))
            if key_id is not None:
                found.add(key_id)
    return found


def _check_master_keys(manifest: dict[str, Any]) -> None:
    """Refuse, before anything is touched, a backup whose data no configured key can read."""
    needed = set(manifest.get("encryption", {}).get("key_ids", []))
    missing = sorted(needed - set(keyring().by_id))
    if missing:
        raise BackupError(
            f"the backup's documents are encrypted under master key id(s) {', '.join(missing)}, "
            "which this installation does not have: set KB_MASTER_KEY (or add it to "
            "KB_MASTER_KEYS_PREVIOUS) to the key the backup was made with; nothing was restored"
        )


def _dump_database(work: Path, say: Say) -> tuple[list[str], dict[str, Any]]:
    """Dump the database and, from the very same snapshot, read what else the backup needs:
    the stored files the dump refers to, the migrations, generations and counts."""

    def facts() -> tuple[list[str], dict[str, Any]]:
        names = sorted(
            set(DocumentVersion.objects.exclude(original="").values_list("original", flat=True))
        )
        generations = [
            {
                "collection_name": g.collection_name,
                "model_name": g.model_name,
                "model_id": g.model_id,
                "dimension": g.dimension,
                "state": g.state,
                "point_count": g.point_count,
            }
            for g in IndexGeneration.objects.exclude(state=IndexGeneration.State.RETIRED)
        ]
        last = AuditRecord.objects.order_by("-seq").values_list("seq", flat=True).first()
        return names, {
            "migrations": _applied_migrations(),
            "generations": generations,
            "counts": {
                "documents": Document.objects.count(),
                "versions": DocumentVersion.objects.count(),
                "chunks": Chunk.objects.count(),
                "live_chunks": sum(
                    DocumentVersion.objects.filter(
                        index_state=DocumentVersion.IndexState.LIVE
                    ).values_list("chunk_count", flat=True)
                ),
                "audit_records": AuditRecord.objects.count(),
                "audit_last_seq": last or 0,
            },
            "chunk_key_ids": _chunk_key_ids(),
        }

    if connection.vendor == "postgresql":
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                cursor.execute("SELECT pg_export_snapshot()")
                row = cursor.fetchone()
            assert row is not None
            snapshot = str(row[0])
            names, info = facts()
            say("Dumping the PostgreSQL database (pg_dump --format=custom)...")
            # The snapshot stays valid while this transaction is open.
            _run(
                [
                    "pg_dump",
                    "--format=custom",
                    f"--snapshot={snapshot}",
                    f"--file={work / PG_DUMP}",
                ],
                "pg_dump",
            )
        info["database"] = {"vendor": "postgresql", "file": PG_DUMP}
        return names, info
    if connection.vendor == "sqlite":
        say("Copying the SQLite database (sqlite3 backup API)...")
        with transaction.atomic():
            # The write lock of this transaction keeps the copy and the file list together.
            names, info = facts()
            connection.ensure_connection()
            target = sqlite3.connect(work / SQLITE_COPY)
            try:
                connection.connection.backup(target)
            finally:
                target.close()
        info["database"] = {"vendor": "sqlite", "file": SQLITE_COPY}
        return names, info
    raise BackupError(f"backups of a {connection.vendor} database are not supported")


def _backup_files(work: Path, names: list[str], say: Say) -> None:
    root = Path(settings.MEDIA_ROOT)
    missing = [name for name in names if not (root / name).is_file()]
    if missing:
        raise BackupError(
            f"{len(missing)} stored file(s) the database refers to are missing from "
            f"{root}, e.g. {missing[0]}: the backup would be incomplete"
        )
    for number, name in enumerate(names, start=1):
        _copy_file(root / name, work / FILES / name)
        if number % 500 == 0:
            say(f"  {number}/{len(names)} files")


def _backup_audit(work: Path) -> dict[str, Any]:
    source = checkpoint_dir()
    info: dict[str, Any] = {"checkpoints": 0, "public_key": None}
    for name in (CHECKPOINT_FILE, PUBLIC_KEY_FILE):
        if (source / name).is_file():
            _copy_file(source / name, work / AUDIT / name)
    checkpoints = work / AUDIT / CHECKPOINT_FILE
    if checkpoints.exists():
        lines = checkpoints.read_text(encoding="utf-8").splitlines()
        info["checkpoints"] = sum(1 for line in lines if line.strip())
    public = work / AUDIT / PUBLIC_KEY_FILE
    if public.exists():
        info["public_key"] = _public_key_fingerprint(public.read_bytes())
    return info


def _inventory(work: Path) -> dict[str, dict[str, Any]]:
    return {
        path.relative_to(work).as_posix(): {"size": path.stat().st_size, "sha256": _sha256(path)}
        for path in sorted(work.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }


def backup(dest: Path, say: Say = _quiet) -> BackupResult:
    as_tar = dest.name.endswith(".tar")
    if as_tar and dest.exists():
        raise BackupError(f"{dest} already exists")
    if not as_tar and dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BackupError(f"{dest} exists and is not an empty directory")
    work = dest.with_name(dest.name + ".partial") if as_tar else dest
    if as_tar and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    created_at = datetime.now(UTC).isoformat()
    try:
        with _held_index(say) as held:
            names, info = _dump_database(work, say)
            say(f"Copying {len(names)} stored files from {settings.MEDIA_ROOT}...")
            _backup_files(work, names, say)
            say("Copying the audit checkpoints and their public key...")
            audit = _backup_audit(work)
            say("Copying the vector index...")
            index_info = _backup_index(work, say, held)
        index_info["generations"] = info.pop("generations")
        inventory = _inventory(work)
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": created_at,
            "completed_at": datetime.now(UTC).isoformat(),
            "versions": {
                "app": _app_version(),
                "django": django.get_version(),
                "migrations": info.pop("migrations"),
            },
            "database": info.pop("database"),
            "index": index_info,
            "audit": audit,
            "counts": {**info.pop("counts"), "stored_files": len(names), "files": len(inventory)},
            # The master keys (by id) that restoring this backup needs (encryption at rest).
            "encryption": {
                "key_ids": sorted(set(info.pop("chunk_key_ids")) | _file_key_ids(work / FILES))
            },
            "files": inventory,
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if as_tar:
            say(f"Writing {dest}...")
            partial_tar = dest.with_name(dest.name + ".tmp")
            with tarfile.open(partial_tar, "w") as archive:
                for path in sorted(work.iterdir()):
                    archive.add(path, arcname=path.name)
            os.replace(partial_tar, dest)
            shutil.rmtree(work)
    except BaseException:
        if as_tar:
            shutil.rmtree(work, ignore_errors=True)
        raise
    return BackupResult(path=dest, manifest=manifest)


# --- restore -------------------------------------------------------------------------------


@dataclass
class RestoreResult:
    manifest: dict[str, Any]
    index_source: str = ""  # "snapshot" or "rebuilt"
    index_points: int = 0
    live_chunks: int = 0
    index_ok: bool = False
    audit_ok: bool = False
    audit_summary: str = ""
    audit_records: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.index_ok and self.audit_ok


@contextmanager
def _opened(source: Path) -> Iterator[Path]:
    """The backup's directory: SOURCE itself, or a .tar unpacked to a temporary directory."""
    if source.is_dir():
        yield source
        return
    if not source.is_file():
        raise BackupError(f"{source} does not exist")
    with tempfile.TemporaryDirectory(prefix="kb-restore-") as temporary:
        try:
            with tarfile.open(source) as archive:
                archive.extractall(temporary, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise BackupError(f"{source} is not a readable backup archive: {exc}") from exc
        yield Path(temporary)


def read_manifest(root: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupError(f"{root} holds no {MANIFEST}: not a backup") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BackupError(f"the backup is corrupted: {MANIFEST} is unreadable ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{root / MANIFEST} is not a {FORMAT} manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(
            f"backup format {manifest.get('format_version')} is not supported (this release "
            f"reads format {FORMAT_VERSION})"
        )
    return manifest


def check_backup(root: Path, manifest: dict[str, Any], say: Say = _quiet) -> None:
    """Every file listed with its size and SHA-256, and nothing else: else it is refused."""
    listed: dict[str, dict[str, Any]] = manifest.get("files", {})
    problems: list[str] = []
    for name, expected in sorted(listed.items()):
        path = root / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif path.stat().st_size != expected["size"]:
            problems.append(f"{name} has {path.stat().st_size} bytes, not {expected['size']}")
        elif _sha256(path) != expected["sha256"]:
            problems.append(f"{name} does not match its SHA-256 in the manifest")
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    extra = sorted(present - set(listed) - {MANIFEST})
    problems.extend(f"{name} is not in the manifest" for name in extra)
    if problems:
        shown = "; ".join(problems[:5]) + (
            f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        )
        raise BackupError(f"the backup is corrupted, nothing was restored: {shown}")
    say(f"All {len(listed)} files match the manifest (SHA-256).")


def _target_contents() -> tuple[int, int]:
    """(documents, audit records) in the target database; zero for an empty database."""
    tables = set(connection.introspection.table_names())
    counts = []
    for model in (Document, AuditRecord):
        table = model._meta.db_table
        if table not in tables:
            counts.append(0)
            continue
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM {connection.ops.quote_name(table)}")  # noqa: S608
            row = cursor.fetchone()
        counts.append(int(row[0]) if row else 0)
    return counts[0], counts[1]


def _move_aside(path: Path, say: Say) -> None:
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        return
    aside = path.with_name(f"{path.name}.before-restore-{datetime.now(UTC):%Y%m%dT%H%M%S}")
    path.rename(aside)
    say(f"  moved the existing {path} aside to {aside}")


def _restore_database(root: Path, manifest: dict[str, Any], say: Say) -> None:
    vendor = manifest["database"]["vendor"]
    if vendor != connection.vendor:
        raise BackupError(
            f"the backup holds a {vendor} database; this installation uses {connection.vendor}"
        )
    connections.close_all()
    if vendor == "postgresql":
        say("Restoring the PostgreSQL database (pg_restore)...")
        _run(
            [
                "pg_restore",
                "--clean",
                "--if-exists",
                "--no-owner",
                "--single-transaction",
                "--exit-on-error",
                f"--dbname={connections['default'].settings_dict['NAME']}",
                str(root / PG_DUMP),
            ],
            "pg_restore",
        )
    else:
        say("Restoring the SQLite database (sqlite3 backup API)...")
        target_path = Path(connections["default"].settings_dict["NAME"])
        target_path.parent.mkdir(parents=True, exist_ok=True)
        source = sqlite3.connect(root / SQLITE_COPY)
        target = sqlite3.connect(target_path)
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
    connections.close_all()
    known = MigrationLoader(None, ignore_no_migrations=True).disk_migrations
    restored = {
        (app, name) for app, names in manifest["versions"]["migrations"].items() for name in names
    }
    unknown = sorted(restored - set(known))
    if unknown:
        raise BackupError(
            f"the backup's schema is newer than this release (unknown migrations such as "
            f"{unknown[0][0]}.{unknown[0][1]}): restore with the release that made it"
        )
    if set(known) - restored:
        say("The backup's schema is older than this release: migrating...")
        call_command("migrate", interactive=False, verbosity=0)


def _restore_files(root: Path, say: Say) -> int:
    target = Path(settings.MEDIA_ROOT)
    count = 0
    source = root / FILES
    if source.is_dir():
        for path in sorted(source.rglob("*")):
            if path.is_file():
                _copy_file(path, target / path.relative_to(source))
                count += 1
    say(f"Restored {count} stored files into {target}.")
    return count


def _restore_audit(root: Path, say: Say) -> None:
    source = root / AUDIT
    target = checkpoint_dir()
    _move_aside(target, say)
    target.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        for path in source.iterdir():
            _copy_file(path, target / path.name)
    say(f"Restored the audit checkpoints into {target}.")


def restored_checkpoints() -> list[dict[str, Any]]:
    """The checkpoints in AUDIT_CHECKPOINT_DIR, each signature checked with the public key
    beside them (the private key is not part of a backup, so it may not be here yet)."""
    path = checkpoint_dir() / CHECKPOINT_FILE
    if not path.exists():
        return []
    public_path = checkpoint_dir() / PUBLIC_KEY_FILE
    if not public_path.exists():
        raise CheckpointSignatureError(
            f"{public_path} is missing: the checkpoints cannot be checked"
        )
    key = serialization.load_pem_public_key(public_path.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise CheckpointSignatureError(f"{public_path} is not an Ed25519 public key")
    entries: list[dict[str, Any]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        entry = json.loads(line)
        body = {name: entry.get(name) for name in ("seq", "hash", "at")}
        try:
            key.verify(base64.b64decode(entry["sig"]), canonical_json(body).encode("utf-8"))
        except (InvalidSignature, KeyError, ValueError) as exc:
            raise CheckpointSignatureError(
                f"{path} line {number}: the signature does not match"
            ) from exc
        entries.append(entry)
    return entries


def _signing_key_warning() -> str | None:
    public = checkpoint_dir() / PUBLIC_KEY_FILE
    key_file = Path(settings.AUDIT_SIGNING_KEY_FILE)
    if not public.exists():
        return None
    if not key_file.exists():
        return (
            f"the audit signing key {key_file} is not here (backups never hold it): put the "
            "installation's key back from where it is kept before starting the service, or "
            "new checkpoints will be signed with a new key that the restored public key "
            "does not match"
        )
    loaded = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        return f"{key_file} is not an Ed25519 private key"
    pem = loaded.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if pem != public.read_bytes():
        return f"{key_file} is not the key that signed the restored checkpoints"
    return None


def _snapshot_fits(say: Say) -> bool:
    """Whether the restored index can serve: the configured model and layout, and exactly
    the database's points."""
    active = IndexGeneration.objects.filter(state=IndexGeneration.State.ACTIVE).first()
    if active is None:
        say("  the backup has no active index generation")
        return False
    try:
        if configured_model_differs():
            say("  the snapshot's embedding model or layout differs from this configuration")
            return False
        wrong, stray = verify_generation(active)
    except MissingCollection:
        say(f"  the snapshot lacks the served collection {active.collection_name}")
        return False
    if wrong or stray:
        say(f"  the snapshot differs from the database: {len(wrong) + len(stray)} versions off")
        return False
    return True


def _restore_index(root: Path, manifest: dict[str, Any], say: Say) -> str:
    kind = manifest.get("index", {}).get("kind")
    used = False
    if not settings.QDRANT_URL:
        close_index()
        path = Path(settings.QDRANT_EDGE_PATH)
        _move_aside(path, say)
        if kind == "qdrant-edge":
            say(f"Restoring the embedded index snapshot into {path}...")
            get_index().restore(root / EDGE_INDEX)
            used = True
    elif kind == "qdrant-server":
        used = _upload_server_snapshots(root, say)
    if used and _snapshot_fits(say):
        active = IndexGeneration.objects.get(state=IndexGeneration.State.ACTIVE)
        get_index().set_alias(settings.QDRANT_COLLECTION, active.collection_name)
        say("The index snapshot matches the database and the embedding model: using it.")
        return "snapshot"
    say("Rebuilding the index from the database (as `manage.py reindex` does)...")
    rebuild_index()
    return "rebuilt"


def _upload_server_snapshots(root: Path, say: Say) -> bool:
    say("Uploading the index snapshots to the Qdrant server...")
    try:
        restored = get_index().restore(root / SERVER_INDEX)
    except SnapshotRefused as exc:
        say(f"  {exc}: rebuilding instead")
        return False
    say(f"  restored {', '.join(restored) or 'no collections'}")
    return True


def check_index() -> tuple[int, int, bool]:
    """(points in the served collection, passages of current versions, whether they agree
    version by version): what `manage.py reindex --check` compares."""
    live = sum(
        DocumentVersion.objects.filter(index_state=DocumentVersion.IndexState.LIVE).values_list(
            "chunk_count", flat=True
        )
    )
    active = IndexGeneration.objects.filter(state=IndexGeneration.State.ACTIVE).first()
    if active is None:
        return 0, live, live == 0
    try:
        points = get_index().count(active.collection_name)
        wrong, stray = verify_generation(active)
    except MissingCollection:
        return 0, live, False
    return points, live, points == live and not wrong and not stray


def restore(source: Path, *, force: bool = False, say: Say = _quiet) -> RestoreResult:
    with _opened(source) as root:
        manifest = read_manifest(root)
        say(
            f"Backup of {manifest['created_at']} (app {manifest['versions']['app']}): "
            f"{manifest['counts']['documents']} documents, "
            f"{manifest['counts']['audit_records']} audit records, "
            f"{manifest['counts']['stored_files']} stored files."
        )
        check_backup(root, manifest, say)
        _check_master_keys(manifest)
        documents, records = _target_contents()
        if documents or records:
            if not force:
                raise BackupError(
                    f"the target installation is not empty ({documents} documents, {records} "
                    "audit records): restore only into an empty installation, or pass --force "
                    "to replace it"
                )
            say(f"--force: replacing {documents} documents and {records} audit records")
        result = RestoreResult(manifest=manifest)
        _restore_database(root, manifest, say)
        _restore_files(root, say)
        _restore_audit(root, say)
        result.index_source = _restore_index(root, manifest, say)

    say("Checking the audit trail...")
    try:
        report = verify(restored_checkpoints())
        result.audit_ok = report.ok
        result.audit_summary = report.summary()
        result.audit_records = report.records
        for problem in report.problems[:20]:
            result.warnings.append(f"audit {problem.kind} #{problem.seq}: {problem.message}")
    except CheckpointSignatureError as exc:
        result.audit_summary = f"FAILED: {exc}"
    warning = _signing_key_warning()
    if warning:
        result.warnings.append(warning)
    say("Comparing the index with the database...")
    result.index_points, result.live_chunks, result.index_ok = check_index()
    close_index()
    return result
