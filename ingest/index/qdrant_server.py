"""Production index: a Qdrant server (or cluster) through qdrant-client.

One collection for all departments; `collection_id` and `department_id` are keyword/integer
payload indexes, and every search carries a `must` filter on them (Qdrant's multitenancy
guidance). Tested with qdrant-client's local mode, which runs the same client API in-process.
"""

from __future__ import annotations

from qdrant_client import QdrantClient, models

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


class QdrantServerIndex:
    def __init__(self, client: QdrantClient, collection: str) -> None:
        self.client = client
        self.collection = collection

    @classmethod
    def from_url(
        cls, url: str, api_key: str | None, collection: str, timeout: int = 30
    ) -> QdrantServerIndex:
        return cls(QdrantClient(url=url, api_key=api_key, timeout=timeout), collection)

    def ensure_ready(self, dimension: int) -> None:
        if self.client.collection_exists(self.collection):
            return
        self.client.create_collection(
            self.collection,
            vectors_config={
                DENSE_VECTOR: models.VectorParams(size=dimension, distance=models.Distance.COSINE)
            },
        )
        # Indexes for the fields every filter uses. (Local mode ignores payload indexes.)
        for key in (COLLECTION_ID, DEPARTMENT_ID, DOCUMENT_ID):
            self.client.create_payload_index(self.collection, key, models.PayloadSchemaType.INTEGER)

    def upsert(self, points: list[IndexPoint]) -> None:
        if not points:
            return
        self.client.upsert(
            self.collection,
            points=[
                models.PointStruct(
                    id=point.point_id,
                    vector={DENSE_VECTOR: point.vector},
                    payload=point.payload(),
                )
                for point in points
            ],
            wait=True,
        )

    def search(
        self, vector: list[float], scope: AccessScope, limit: int, min_score: float | None = None
    ) -> list[IndexHit]:
        scope = require_scope(scope)
        if scope.is_empty:
            return []
        response = self.client.query_points(
            self.collection,
            query=vector,
            using=DENSE_VECTOR,
            query_filter=models.Filter(
                must=[
                    models.FieldCondition(
                        key=COLLECTION_ID,
                        match=models.MatchAny(any=sorted(scope.collection_ids)),
                    )
                ]
            ),
            limit=limit,
            score_threshold=min_score,
            with_payload=True,
        )
        return [hit_from_payload(p.id, p.score, dict(p.payload or {})) for p in response.points]

    def _document_filter(self, document_id: int) -> models.Filter:
        return models.Filter(
            must=[
                models.FieldCondition(key=DOCUMENT_ID, match=models.MatchValue(value=document_id))
            ]
        )

    def delete_document(self, document_id: int) -> None:
        self.client.delete(
            self.collection,
            points_selector=models.FilterSelector(filter=self._document_filter(document_id)),
            wait=True,
        )

    def count(self, document_id: int | None = None) -> int:
        count_filter = None if document_id is None else self._document_filter(document_id)
        return self.client.count(self.collection, count_filter=count_filter, exact=True).count

    def close(self) -> None:
        self.client.close()
