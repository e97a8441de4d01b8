"""Production index: a Qdrant server (or cluster) through qdrant-client.

All departments share each collection; `collection_id`, `department_id`, `document_id` and
`version_id` are integer payload indexes, and every search carries a `must` filter on the
caller's collections (Qdrant's multitenancy guidance). Generations are separate collections
behind an alias that `update_collection_aliases` switches in one atomic request. Tested with
qdrant-client's local mode, which serves the same client API in-process.
"""

from __future__ import annotations

from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from ingest.index.base import (
    COLLECTION_ID,
    DENSE_VECTOR,
    DOCUMENT_ID,
    INTEGER_FIELDS,
    VERSION_ID,
    AccessScope,
    IndexHit,
    IndexPoint,
    MissingCollection,
    hit_from_payload,
    payload_int,
    require_scope,
)

_SCROLL_PAGE = 1000


def _match(key: str, value: int) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


class QdrantServerIndex:
    def __init__(self, client: QdrantClient) -> None:
        self.client = client

    @classmethod
    def from_url(cls, url: str, api_key: str | None, timeout: int = 30) -> QdrantServerIndex:
        return cls(QdrantClient(url=url, api_key=api_key, timeout=timeout))

    def _require(self, name: str) -> None:
        if not self.client.collection_exists(name):
            raise MissingCollection(f"index collection {name!r} does not exist")

    # --- collections and aliases --------------------------------------------------------

    def create_collection(self, name: str, dimension: int) -> None:
        if self.client.collection_exists(name):
            return
        self.client.create_collection(
            name,
            vectors_config={
                DENSE_VECTOR: models.VectorParams(size=dimension, distance=models.Distance.COSINE)
            },
        )
        # Indexes for the fields every filter uses. (Local mode ignores payload indexes.)
        for key in INTEGER_FIELDS:
            self.client.create_payload_index(name, key, models.PayloadSchemaType.INTEGER)

    def drop_collection(self, name: str) -> None:
        if self.client.collection_exists(name):
            self.client.delete_collection(name)

    def collection_names(self) -> list[str]:
        return sorted(c.name for c in self.client.get_collections().collections)

    def set_alias(self, alias: str, collection: str) -> None:
        self._require(collection)
        if alias in self.collection_names():
            # A real collection squats on the alias's name (an older layout): its contents
            # are rebuildable from the database, and the alias must win.
            self.client.delete_collection(alias)
        operations: list[models.AliasOperations] = []
        if self.alias_target(alias) is not None:
            operations.append(
                models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias))
            )
        operations.append(
            models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name=collection, alias_name=alias)
            )
        )
        # One request: Qdrant applies the delete and the create together.
        self.client.update_collection_aliases(change_aliases_operations=operations)

    def alias_target(self, alias: str) -> str | None:
        for description in self.client.get_aliases().aliases:
            if description.alias_name == alias:
                return str(description.collection_name)
        return None

    # --- points -------------------------------------------------------------------------

    def upsert(self, collection: str, points: list[IndexPoint]) -> None:
        if not points:
            return
        try:
            self.client.upsert(
                collection,
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
        except (UnexpectedResponse, ValueError) as exc:
            if not self.client.collection_exists(collection):
                raise MissingCollection(f"index collection {collection!r} is gone") from exc
            raise

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
        must_not: list[models.Condition] | None = None
        if exclude_version_ids:
            must_not = [
                models.FieldCondition(
                    key=VERSION_ID, match=models.MatchAny(any=sorted(exclude_version_ids))
                )
            ]
        response = self.client.query_points(
            collection,
            query=vector,
            using=DENSE_VECTOR,
            query_filter=models.Filter(
                must=[
                    models.FieldCondition(
                        key=COLLECTION_ID,
                        match=models.MatchAny(any=sorted(scope.collection_ids)),
                    )
                ],
                must_not=must_not,
            ),
            limit=limit,
            score_threshold=min_score,
            with_payload=True,
        )
        return [hit_from_payload(p.id, p.score, dict(p.payload or {})) for p in response.points]

    def delete_version(self, collection: str, version_id: int) -> None:
        self._require(collection)
        self.client.delete(
            collection,
            points_selector=models.FilterSelector(
                filter=models.Filter(must=[_match(VERSION_ID, version_id)])
            ),
            wait=True,
        )

    def count(
        self, collection: str, *, document_id: int | None = None, version_id: int | None = None
    ) -> int:
        self._require(collection)
        conditions: list[models.Condition] = []
        if document_id is not None:
            conditions.append(_match(DOCUMENT_ID, document_id))
        if version_id is not None:
            conditions.append(_match(VERSION_ID, version_id))
        count_filter = models.Filter(must=conditions) if conditions else None
        return self.client.count(collection, count_filter=count_filter, exact=True).count

    def version_counts(self, collection: str) -> dict[int, int]:
        self._require(collection)
        counts: dict[int, int] = {}
        offset: models.ExtendedPointId | None = None
        while True:
            records, next_offset = self.client.scroll(
                collection,
                limit=_SCROLL_PAGE,
                offset=offset,
                with_payload=[VERSION_ID],
                with_vectors=False,
            )
            for record in records:
                version = payload_int(record.id, dict(record.payload or {}), VERSION_ID)
                counts[version] = counts.get(version, 0) + 1
            if next_offset is None:
                return counts
            offset = next_offset

    def close(self) -> None:
        self.client.close()
