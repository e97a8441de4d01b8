"""What every vector index adapter promises, and the access scope that every search carries."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

# Fixed namespace: point ids are uuid5(namespace, "document:ordinal"), so re-running an
# ingestion overwrites the same points instead of adding duplicates.
POINT_ID_NAMESPACE = uuid.UUID("0f6e2c1a-5d0b-4c8e-9a57-3f1d2b7c9e40")

DENSE_VECTOR = "dense"

# Payload keys. The text stays in the database; the index holds only what a filter needs
# and the id that leads back to the row.
CHUNK_ID = "chunk_id"
DOCUMENT_ID = "document_id"
COLLECTION_ID = "collection_id"
DEPARTMENT_ID = "department_id"


def point_id_for_chunk(document_id: int, ordinal: int) -> str:
    return str(uuid.uuid5(POINT_ID_NAMESPACE, f"{document_id}:{ordinal}"))


class UnscopedQueryError(RuntimeError):
    """A search was attempted without an access scope. This is a programming error."""


@dataclass(frozen=True)
class AccessScope:
    """The collections a caller may read, decided on the server from their memberships.

    It becomes a `must` filter inside the index query; results are never filtered afterwards.
    """

    collection_ids: frozenset[int]

    @property
    def is_empty(self) -> bool:
        return not self.collection_ids


@dataclass(frozen=True)
class IndexPoint:
    point_id: str
    vector: list[float]
    chunk_id: int
    document_id: int
    collection_id: int
    department_id: int

    def payload(self) -> dict[str, int]:
        return {
            CHUNK_ID: self.chunk_id,
            DOCUMENT_ID: self.document_id,
            COLLECTION_ID: self.collection_id,
            DEPARTMENT_ID: self.department_id,
        }


@dataclass(frozen=True)
class IndexHit:
    point_id: str
    chunk_id: int
    document_id: int
    collection_id: int
    score: float


def require_scope(scope: object) -> AccessScope:
    """Refuse any search that does not carry an AccessScope (SECURITY.md case 2)."""
    if not isinstance(scope, AccessScope):
        raise UnscopedQueryError(
            f"index search refused: an AccessScope is required, got {type(scope).__name__}"
        )
    return scope


def hit_from_payload(point_id: object, score: float, payload: dict[str, object]) -> IndexHit:
    def as_int(key: str) -> int:
        value = payload.get(key)
        if not isinstance(value, int):
            raise ValueError(f"index point {point_id} has no integer {key!r} in its payload")
        return value

    return IndexHit(
        point_id=str(point_id),
        chunk_id=as_int(CHUNK_ID),
        document_id=as_int(DOCUMENT_ID),
        collection_id=as_int(COLLECTION_ID),
        score=float(score),
    )


class VectorIndex(Protocol):
    """The contract both adapters pass (tests/ingest/test_index_contract.py)."""

    def ensure_ready(self, dimension: int) -> None:
        """Create the collection and payload indexes if missing; idempotent."""

    def upsert(self, points: list[IndexPoint]) -> None: ...

    def search(
        self, vector: list[float], scope: AccessScope, limit: int, min_score: float | None = None
    ) -> list[IndexHit]: ...

    def delete_document(self, document_id: int) -> None: ...

    def count(self, document_id: int | None = None) -> int: ...

    def close(self) -> None: ...
