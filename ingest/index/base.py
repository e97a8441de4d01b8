"""What every vector index adapter promises, and the access scope that every search carries.

An adapter is a store of named collections plus aliases. The product writes each index
generation (one embedding model, one rebuild) into its own collection and points an alias at
the one being served, so a rebuild or a model change switches over atomically.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

# Fixed namespace: point ids are uuid5(namespace, "version:ordinal"), so re-running an
# ingestion overwrites the same points instead of adding duplicates.
POINT_ID_NAMESPACE = uuid.UUID("0f6e2c1a-5d0b-4c8e-9a57-3f1d2b7c9e40")

DENSE_VECTOR = "dense"

# Payload keys. The text stays in the database; the index holds only what a filter needs
# and the ids that lead back to the rows.
CHUNK_ID = "chunk_id"
DOCUMENT_ID = "document_id"
VERSION_ID = "version_id"
COLLECTION_ID = "collection_id"
DEPARTMENT_ID = "department_id"
INTEGER_FIELDS = (COLLECTION_ID, DEPARTMENT_ID, DOCUMENT_ID, VERSION_ID)


def point_id_for_chunk(version_id: int, ordinal: int) -> str:
    return str(uuid.uuid5(POINT_ID_NAMESPACE, f"{version_id}:{ordinal}"))


class UnscopedQueryError(RuntimeError):
    """A search was attempted without an access scope. This is a programming error."""


class IndexLocked(RuntimeError):
    """The embedded index is open in another process (only one may hold Qdrant Edge)."""


class MissingCollection(RuntimeError):
    """The named index collection does not exist (dropped by a finished rebuild, say)."""


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
    version_id: int
    collection_id: int
    department_id: int

    def payload(self) -> dict[str, int]:
        return {
            CHUNK_ID: self.chunk_id,
            DOCUMENT_ID: self.document_id,
            VERSION_ID: self.version_id,
            COLLECTION_ID: self.collection_id,
            DEPARTMENT_ID: self.department_id,
        }


@dataclass(frozen=True)
class IndexHit:
    point_id: str
    chunk_id: int
    document_id: int
    version_id: int
    collection_id: int
    score: float


def require_scope(scope: object) -> AccessScope:
    """Refuse any search that does not carry an AccessScope (SECURITY.md case 2)."""
    if not isinstance(scope, AccessScope):
        raise UnscopedQueryError(
            f"index search refused: an AccessScope is required, got {type(scope).__name__}"
        )
    return scope


def payload_int(point_id: object, payload: dict[str, object], key: str) -> int:
    value = payload.get(key)
    if not isinstance(value, int):
        raise ValueError(f"index point {point_id} has no integer {key!r} in its payload")
    return value


def hit_from_payload(point_id: object, score: float, payload: dict[str, object]) -> IndexHit:
    return IndexHit(
        point_id=str(point_id),
        chunk_id=payload_int(point_id, payload, CHUNK_ID),
        document_id=payload_int(point_id, payload, DOCUMENT_ID),
        version_id=payload_int(point_id, payload, VERSION_ID),
        collection_id=payload_int(point_id, payload, COLLECTION_ID),
        score=float(score),
    )


class VectorIndex(Protocol):
    """The contract both adapters pass (tests/ingest/test_index_contract.py)."""

    def create_collection(self, name: str, dimension: int) -> None:
        """Create the collection and its payload indexes if missing; idempotent."""

    def drop_collection(self, name: str) -> None:
        """Remove the collection if it exists."""

    def collection_names(self) -> list[str]: ...

    def set_alias(self, alias: str, collection: str) -> None:
        """Point `alias` at `collection` in one atomic step (readers see old or new)."""

    def alias_target(self, alias: str) -> str | None: ...

    def upsert(self, collection: str, points: list[IndexPoint]) -> None: ...

    def search(
        self,
        collection: str,
        vector: list[float],
        scope: AccessScope,
        limit: int,
        min_score: float | None = None,
        exclude_version_ids: frozenset[int] = frozenset(),
    ) -> list[IndexHit]:
        """Nearest points inside `scope`, best first; `exclude_version_ids` are invisible."""

    def delete_version(self, collection: str, version_id: int) -> None: ...

    def count(
        self, collection: str, *, document_id: int | None = None, version_id: int | None = None
    ) -> int: ...

    def version_counts(self, collection: str) -> dict[int, int]:
        """Points per document version: how a rebuild and the crash tests check the index."""

    def close(self) -> None: ...
