"""Embedded index: the Qdrant engine in-process through qdrant-edge-py.

Qdrant Edge is one shard per directory, so collections are directories under `root` and the
aliases live in `root/aliases.json`, replaced atomically (write, fsync, rename). A shard can be
open in one process only (its write-ahead log is locked), which is why the embedded default
runs its Celery worker inside the web process.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from pathlib import Path

import qdrant_edge as qe

from ingest.index.base import (
    COLLECTION_ID,
    DENSE_VECTOR,
    DOCUMENT_ID,
    INTEGER_FIELDS,
    VERSION_ID,
    AccessScope,
    IndexHit,
    IndexLocked,
    IndexPoint,
    MissingCollection,
    hit_from_payload,
    payload_int,
    require_scope,
)

_SCROLL_PAGE = 1000


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


class QdrantEdgeIndex:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._shards: dict[str, qe.EdgeShard] = {}
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
                }
            )
            shard = _open(path, config)
            for key in INTEGER_FIELDS:
                shard.update(
                    qe.UpdateOperation.create_field_index(key, qe.PayloadSchemaType.Integer)
                )
            shard.flush()
            self._shards[name] = shard

    def drop_collection(self, name: str) -> None:
        with self._lock:
            shard = self._shards.pop(name, None)
            if shard is not None:
                shard.close()
            shutil.rmtree(self._path(name), ignore_errors=True)

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
            self.root.mkdir(parents=True, exist_ok=True)
            # Readers see the old file or the new one, never a half-written one.
            fd, temporary = tempfile.mkstemp(dir=self.root, prefix=".aliases-")
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(aliases, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self._aliases_file)

    def alias_target(self, alias: str) -> str | None:
        return self._aliases().get(alias)

    # --- points -------------------------------------------------------------------------

    def upsert(self, collection: str, points: list[IndexPoint]) -> None:
        if not points:
            return
        with self._lock:
            shard = self._shard(collection)
            shard.update(
                qe.UpdateOperation.upsert_points(
                    [
                        qe.Point(point.point_id, {DENSE_VECTOR: point.vector}, point.payload())
                        for point in points
                    ]
                )
            )
            shard.flush()

    def search(
        self,
        collection: str,
        vector: list[float],
        scope: AccessScope,
        limit: int,
        min_score: float | None = None,
        exclude_version_ids: frozenset[int] = frozenset(),
    ) -> list[IndexHit]:
        scope = require_scope(scope)
        if scope.is_empty:
            return []
        access_filter = qe.Filter(
            must=[
                qe.FieldCondition(
                    key=COLLECTION_ID, match=qe.MatchAny(any=sorted(scope.collection_ids))
                )
            ],
            must_not=[
                qe.FieldCondition(
                    key=VERSION_ID, match=qe.MatchAny(any=sorted(exclude_version_ids))
                )
            ]
            if exclude_version_ids
            else None,
        )
        results = self._shard(collection).query(
            qe.QueryRequest(
                limit=limit,
                query=qe.Query.Nearest(vector, using=DENSE_VECTOR),
                filter=access_filter,
                with_payload=True,
                score_threshold=min_score,
            )
        )
        return [hit_from_payload(r.id, r.score, dict(r.payload or {})) for r in results]

    def delete_version(self, collection: str, version_id: int) -> None:
        with self._lock:
            shard = self._shard(collection)
            shard.update(
                qe.UpdateOperation.delete_points_by_filter(
                    qe.Filter(must=[_match(VERSION_ID, version_id)])
                )
            )
            shard.flush()

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

    def close(self) -> None:
        with self._lock:
            for shard in self._shards.values():
                shard.close()
            self._shards.clear()
