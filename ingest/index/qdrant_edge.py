"""Embedded index: the Qdrant engine in-process through qdrant-edge-py.

A shard directory can be open in one process only (its write-ahead log is locked), which is
why the embedded default runs its Celery worker inside the web process.
"""

from __future__ import annotations

import threading
from pathlib import Path

import qdrant_edge as qe

from ingest.index.base import (
    COLLECTION_ID,
    DENSE_VECTOR,
    DEPARTMENT_ID,
    DOCUMENT_ID,
    AccessScope,
    IndexHit,
    IndexPoint,
    hit_from_payload,
    require_scope,
)


class QdrantEdgeIndex:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._shard: qe.EdgeShard | None = None
        # Writes from the worker thread and reads from web threads share one shard object;
        # the lock keeps open/close and multi-step writes from interleaving.
        self._lock = threading.RLock()

    def ensure_ready(self, dimension: int) -> None:
        with self._lock:
            if self._shard is not None:
                return
            config = qe.EdgeConfig(
                vectors={
                    DENSE_VECTOR: qe.EdgeVectorParams(size=dimension, distance=qe.Distance.Cosine)
                }
            )
            has_data = self.path.exists() and any(self.path.iterdir())
            if has_data:
                self._shard = qe.EdgeShard.load(str(self.path))
            else:
                self.path.mkdir(parents=True, exist_ok=True)
                self._shard = qe.EdgeShard.create(str(self.path), config)
                for key in (COLLECTION_ID, DEPARTMENT_ID, DOCUMENT_ID):
                    self._shard.update(
                        qe.UpdateOperation.create_field_index(key, qe.PayloadSchemaType.Integer)
                    )

    def _open(self) -> qe.EdgeShard:
        if self._shard is None:
            raise RuntimeError("QdrantEdgeIndex.ensure_ready() must be called first")
        return self._shard

    def upsert(self, points: list[IndexPoint]) -> None:
        if not points:
            return
        with self._lock:
            shard = self._open()
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
        self, vector: list[float], scope: AccessScope, limit: int, min_score: float | None = None
    ) -> list[IndexHit]:
        scope = require_scope(scope)
        if scope.is_empty:
            return []
        access_filter = qe.Filter(
            must=[
                qe.FieldCondition(
                    key=COLLECTION_ID, match=qe.MatchAny(any=sorted(scope.collection_ids))
                )
            ]
        )
        results = self._open().query(
            qe.QueryRequest(
                limit=limit,
                query=qe.Query.Nearest(vector, using=DENSE_VECTOR),
                filter=access_filter,
                with_payload=True,
                score_threshold=min_score,
            )
        )
        return [hit_from_payload(r.id, r.score, dict(r.payload or {})) for r in results]

    def delete_document(self, document_id: int) -> None:
        with self._lock:
            shard = self._open()
            shard.update(
                qe.UpdateOperation.delete_points_by_filter(
                    qe.Filter(
                        must=[qe.FieldCondition(key=DOCUMENT_ID, match=qe.MatchValue(document_id))]
                    )
                )
            )
            shard.flush()

    def count(self, document_id: int | None = None) -> int:
        count_filter = None
        if document_id is not None:
            count_filter = qe.Filter(
                must=[qe.FieldCondition(key=DOCUMENT_ID, match=qe.MatchValue(document_id))]
            )
        return self._open().count(qe.CountRequest(exact=True, filter=count_filter))

    def close(self) -> None:
        with self._lock:
            if self._shard is not None:
                self._shard.close()
                self._shard = None
