"""Embedded index: the Qdrant engine in-process through qdrant-edge-py.

Qdrant Edge is one shard per directory, so collections are directories under `root` and the
aliases live in `root/aliases.json`, replaced atomically (write, fsync, rename). A shard can be
open in one process only (its write-ahead log is locked), which is why the embedded default
runs its Celery worker inside the web process.

Qdrant Edge trusts its input: a malformed sparse vector makes it panic (a BaseException from
Rust) and leaves the update in the write-ahead log, to panic again on every open. Sparse
vectors are checked when they are built (`SparseVector`), and a panic that still happens is
turned into an ordinary exception here, so the caller's error handling sees it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import qdrant_edge as qe

from ingest.index.base import (
    COLLECTION_ID,
    DEFAULT_FUSION,
    DENSE_VECTOR,
    DOCUMENT_ID,
    INDEX_SCHEMA_VERSION,
    INTEGER_FIELDS,
    SPARSE_VECTOR,
    VERSION_ID,
    AccessScope,
    Fusion,
    IndexHit,
    IndexLocked,
    IndexPoint,
    MissingCollection,
    ScopeSizes,
    SparseVector,
    channel_limit,
    fuse_rankings,
    hit_from_payload,
    lexical_hits,
    payload_int,
    require_scope,
    unrecorded_schema_version,
)

_SCROLL_PAGE = 1000
# Every update goes to the shard's write-ahead log first, which is what makes it survive a
# killed process (the log is replayed when the shard is next opened); flush() persists the
# segments so the log can be trimmed. A flush holds the GIL while it writes, a few to tens of
# milliseconds that stall every thread of the process, the embedding model's included, so
# writes flush at most this often (Qdrant server's own flush_interval_sec default), and
# close() flushes what is left.
FLUSH_INTERVAL_SECONDS = 5.0


class EdgePanic(RuntimeError):
    """Qdrant Edge panicked (a Rust panic surfaces as a BaseException, not an Exception)."""


@contextmanager
def _no_panic(what: str) -> Iterator[None]:
    try:
        yield
    except BaseException as exc:
        if type(exc).__name__ == "PanicException":
            raise EdgePanic(f"Qdrant Edge panicked during {what}: {exc}") from exc
        raise


def _sparse(vector: SparseVector) -> qe.SparseVector:
    return qe.SparseVector(indices=list(vector.indices), values=list(vector.values))


def _match(key: str, value: int) -> qe.FieldCondition:
    return qe.FieldCondition(key=key, match=qe.MatchValue(value))


def _open(path: Path, config: qe.EdgeConfig | None = None) -> qe.EdgeShard:
    """Load (or, with a config, create) a shard, naming the one failure people will meet."""
    try:
        return qe.EdgeShard.create(str(path), config) if config else qe.EdgeShard.load(str(path))
    except Exception as exc:
        if "WouldBlock" in str(exc):
            raise IndexLocked(
                f"the embedded index {path.parent.parent} is open in another process "
                "(only one process may hold it: is `manage.py serve` running?)"
            ) from exc
        raise


def scope_filter(scope: AccessScope, exclude_version_ids: frozenset[int]) -> qe.Filter:
    """The access filter every search carries: the scope's collections, minus hidden versions."""
    readable = qe.MatchAny(any=sorted(scope.collection_ids))
    return qe.Filter(
        must=[qe.FieldCondition(key=COLLECTION_ID, match=readable)],
        must_not=[
            qe.FieldCondition(key=VERSION_ID, match=qe.MatchAny(any=sorted(exclude_version_ids)))
        ]
        if exclude_version_ids
        else None,
    )


def search_requests(
    vector: list[float],
    access_filter: qe.Filter,
    limit: int,
    min_score: float | None,
    sparse: SparseVector | None,
) -> list[qe.QueryRequest]:
    """The dense request, and the lexical one when `sparse` is given, both inside the access
    filter; each channel searched deeper than `limit` when there are two to fuse.
    (bench/retrieval.py sends these very requests to a bare shard.)"""
    depth = channel_limit(limit) if sparse is not None else limit
    requests = [
        qe.QueryRequest(
            limit=depth,
            query=qe.Query.Nearest(vector, using=DENSE_VECTOR),
            filter=access_filter,
            with_payload=True,
            score_threshold=min_score,
        )
    ]
    if sparse is not None:
        requests.append(
            qe.QueryRequest(
                limit=depth,
                query=qe.Query.Nearest(_sparse(sparse), using=SPARSE_VECTOR),
                filter=access_filter,
                with_payload=True,
                # IDF over what the caller may see, not over every department's text.
                params=qe.SearchParams(idf=qe.IdfParams(corpus=access_filter)),
            )
        )
    return requests


class QdrantEdgeIndex:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._shards: dict[str, qe.EdgeShard] = {}
        # Whether each collection has the lexical vector (schema 2); older ones are dense only.
        self._lexical: dict[str, bool] = {}
        self._scope_sizes = ScopeSizes()
        self._flushed_at: dict[str, float] = {}  # collection -> time.monotonic() of its flush
        # Writes from the worker thread and reads from web threads share the shard objects;
        # the lock keeps open/close and multi-step writes from interleaving.
        self._lock = threading.RLock()

    @property
    def _collections_dir(self) -> Path:
        return self.root / "collections"

    @property
    def _aliases_file(self) -> Path:
        return self.root / "aliases.json"

    def _path(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"invalid index collection name {name!r}")
        return self._collections_dir / name

    def _shard(self, name: str) -> qe.EdgeShard:
        with self._lock:
            shard = self._shards.get(name)
            if shard is None:
                path = self._path(name)
                if not path.is_dir():
                    raise MissingCollection(f"index collection {name!r} does not exist")
                shard = _open(path)
                self._shards[name] = shard
            return shard

    # --- collections and aliases --------------------------------------------------------

    def create_collection(self, name: str, dimension: int) -> None:
        with self._lock:
            path = self._path(name)
            if path.is_dir() and any(path.iterdir()):
                return
            path.mkdir(parents=True, exist_ok=True)
            config = qe.EdgeConfig(
                vectors={
                    DENSE_VECTOR: qe.EdgeVectorParams(size=dimension, distance=qe.Distance.Cosine)
                },
                sparse_vectors={SPARSE_VECTOR: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            )
            shard = _open(path, config)
            for key in INTEGER_FIELDS:
                shard.update(
                    qe.UpdateOperation.create_field_index(key, qe.PayloadSchemaType.Integer)
                )
            shard.flush()
            self._shards[name] = shard
            self._lexical[name] = True
            self._replace_file(self._schema_file(name), str(INDEX_SCHEMA_VERSION))

    def _schema_file(self, name: str) -> Path:
        # Beside the shard's directory, not in it: the directory belongs to Qdrant Edge.
        return self._collections_dir / f"{self._path(name).name}.schema"

    def schema_version(self, name: str) -> int:
        if not self._path(name).is_dir():
            raise MissingCollection(f"index collection {name!r} does not exist")
        try:
            return int(self._schema_file(name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return unrecorded_schema_version(self._has_lexical(name))

    def _has_lexical(self, name: str) -> bool:
        known = self._lexical.get(name)
        if known is not None:
            return known
        shard = self._shard(name)
        # Edge has no call that reports a shard's vectors; asking for the sparse one does.
        probe = qe.QueryRequest(
            limit=1,
            query=qe.Query.Nearest(qe.SparseVector(indices=[0], values=[1.0]), using=SPARSE_VECTOR),
            with_payload=False,
        )
        try:
            with _no_panic("a schema probe"):
                shard.query(probe)
            lexical = True
        except Exception as exc:
            if "Not existing vector name" not in str(exc):
                raise
            lexical = False
        self._lexical[name] = lexical
        return lexical

    def drop_collection(self, name: str) -> None:
        with self._lock:
            self._lexical.pop(name, None)
            self._flushed_at.pop(name, None)
            self._scope_sizes.forget(name)
            shard = self._shards.pop(name, None)
            if shard is not None:
                shard.close()
            shutil.rmtree(self._path(name), ignore_errors=True)
            self._schema_file(name).unlink(missing_ok=True)

    def collection_names(self) -> list[str]:
        if not self._collections_dir.is_dir():
            return []
        return sorted(p.name for p in self._collections_dir.iterdir() if p.is_dir())

    def _aliases(self) -> dict[str, str]:
        try:
            data = json.loads(self._aliases_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        return {str(k): str(v) for k, v in data.items()}

    def set_alias(self, alias: str, collection: str) -> None:
        with self._lock:
            if not self._path(collection).is_dir():
                raise MissingCollection(f"cannot alias {alias!r} to missing {collection!r}")
            aliases = {**self._aliases(), alias: collection}
            self._replace_file(self._aliases_file, json.dumps(aliases))

    @staticmethod
    def _replace_file(path: Path, text: str) -> None:
        """Readers see the old file or the new one, never a half-written one."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)

    def alias_target(self, alias: str) -> str | None:
        return self._aliases().get(alias)

    # --- points -------------------------------------------------------------------------

    def upsert(self, collection: str, points: list[IndexPoint]) -> None:
        if not points:
            return
        with self._lock:
            shard = self._shard(collection)
            lexical = self._has_lexical(collection)
            edge_points = []
            for point in points:
                vectors: dict[str, list[float] | list[list[float]] | qe.SparseVector] = {
                    DENSE_VECTOR: point.vector
                }
                # A point without lexical vector is simply not in the lexical channel; a
                # dense-only collection (schema 1, until its rebuild) must not be sent one.
                if lexical and point.sparse is not None and not point.sparse.is_empty:
                    vectors[SPARSE_VECTOR] = _sparse(point.sparse)
                edge_points.append(qe.Point(point.point_id, vectors, point.payload()))
            with _no_panic(f"an upsert into {collection}"):
                shard.update(qe.UpdateOperation.upsert_points(edge_points))
                self._flush_if_due(collection, shard)
            self._scope_sizes.forget(collection)

    def _flush_if_due(self, collection: str, shard: qe.EdgeShard) -> None:
        # Called with self._lock held. See FLUSH_INTERVAL_SECONDS.
        now = time.monotonic()
        if (
            now - self._flushed_at.get(collection, -FLUSH_INTERVAL_SECONDS)
            >= FLUSH_INTERVAL_SECONDS
        ):
            shard.flush()
            self._flushed_at[collection] = now

    def search(
        self,
        collection: str,
        vector: list[float],
        scope: AccessScope,
        limit: int,
        min_score: float | None = None,
        exclude_version_ids: frozenset[int] = frozenset(),
        *,
        sparse: SparseVector | None = None,
        min_lexical_score: float | None = None,
        fusion: Fusion = DEFAULT_FUSION,
    ) -> list[IndexHit]:
        scope = require_scope(scope)
        if scope.is_empty:
            return []
        access_filter = scope_filter(scope, exclude_version_ids)
        shard = self._shard(collection)
        hybrid = sparse is not None and not sparse.is_empty and self._has_lexical(collection)
        requests = search_requests(
            vector, access_filter, limit, min_score, sparse if hybrid else None
        )
        with _no_panic(f"a search of {collection}"):
            results = shard.query_batch(qe.QueryBatchRequest(requests))
        dense = [
            hit_from_payload(r.id, r.score, dict(r.payload or {}), dense_score=r.score)
            for r in results[0]
        ]
        lexical: list[IndexHit] = []
        if hybrid and results[1]:
            in_scope = self._scope_sizes.get(
                collection,
                scope,
                exclude_version_ids,
                lambda: shard.count(qe.CountRequest(exact=True, filter=access_filter)),
            )
            lexical = lexical_hits(
                ((r.id, r.score, dict(r.payload or {})) for r in results[1]),
                in_scope,
                min_lexical_score,
            )
        return fuse_rankings(dense, lexical, limit, fusion)

    def delete_version(self, collection: str, version_id: int) -> None:
        with self._lock:
            shard = self._shard(collection)
            with _no_panic(f"deleting a version in {collection}"):
                shard.update(
                    qe.UpdateOperation.delete_points_by_filter(
                        qe.Filter(must=[_match(VERSION_ID, version_id)])
                    )
                )
                self._flush_if_due(collection, shard)
            self._scope_sizes.forget(collection)

    def count(
        self, collection: str, *, document_id: int | None = None, version_id: int | None = None
    ) -> int:
        conditions: list[qe.ConditionType] = []
        if document_id is not None:
            conditions.append(_match(DOCUMENT_ID, document_id))
        if version_id is not None:
            conditions.append(_match(VERSION_ID, version_id))
        count_filter = qe.Filter(must=conditions) if conditions else None
        return self._shard(collection).count(qe.CountRequest(exact=True, filter=count_filter))

    def version_counts(self, collection: str) -> dict[int, int]:
        shard = self._shard(collection)
        counts: dict[int, int] = {}
        offset = None
        while True:
            records, offset = shard.scroll(
                qe.ScrollRequest(
                    offset=offset, limit=_SCROLL_PAGE, with_payload=True, with_vector=False
                )
            )
            for record in records:
                version = payload_int(record.id, dict(record.payload or {}), VERSION_ID)
                counts[version] = counts.get(version, 0) + 1
            if offset is None:
                return counts

    # --- backup -------------------------------------------------------------------------

    @contextmanager
    def paused_writes(self, collections: Iterable[str] = ()) -> Iterator[list[str]]:
        # Every write, and every open or close of a shard, runs under self._lock: holding it
        # holds them all. Opening a shard locks its write-ahead log against other processes.
        with self._lock:
            opened: list[str] = []
            for name in collections:
                try:
                    self._shard(name)
                except MissingCollection:
                    continue
                opened.append(name)
            yield opened

    def snapshot(self, collections: Sequence[str], target: Path) -> list[Path]:
        """Copies of the shard directories (flushed first, so the copy needs no replay of
        the log), their schema files and the aliases to them, laid out as under `root`."""
        with self._lock:
            shards = {name: self._shard(name) for name in collections}
            copied = target / "collections"
            copied.mkdir(parents=True, exist_ok=True)
            written: list[Path] = []
            for name, shard in shards.items():
                with _no_panic(f"a flush of {name}"):
                    shard.flush()
                self._flushed_at[name] = time.monotonic()
                shutil.copytree(self._path(name), copied / name)
                written.extend(p for p in (copied / name).rglob("*") if p.is_file())
                schema = self._schema_file(name)
                if schema.is_file():
                    shutil.copy2(schema, copied / schema.name)
                    written.append(copied / schema.name)
            aliases = {a: c for a, c in self._aliases().items() if c in shards}
            if aliases:
                self._replace_file(target / self._aliases_file.name, json.dumps(aliases))
                written.append(target / self._aliases_file.name)
            return sorted(written)

    def restore(self, source: Path) -> list[str]:
        copied = source / "collections"
        with self._lock:
            restored: list[str] = []
            for directory in sorted(copied.iterdir()) if copied.is_dir() else ():
                if not directory.is_dir():
                    continue
                name = directory.name
                self.drop_collection(name)  # closes its shard and forgets what was cached
                shutil.copytree(directory, self._path(name))
                schema = copied / f"{name}.schema"
                if schema.is_file():
                    shutil.copy2(schema, self._schema_file(name))
                restored.append(name)
            aliases_file = source / self._aliases_file.name
            if aliases_file.is_file():
                saved = json.loads(aliases_file.read_text(encoding="utf-8"))
                aliases = {
                    **self._aliases(),
                    **{str(a): str(c) for a, c in saved.items() if self._path(str(c)).is_dir()},
                }
                self._replace_file(self._aliases_file, json.dumps(aliases))
            return restored

    def close(self) -> None:
        with self._lock:
            for shard in self._shards.values():
                shard.flush()
                shard.close()
            self._shards.clear()
            self._flushed_at.clear()
            self._lexical.clear()
