"""The vector index. This package is the only code that talks to Qdrant.

`base` holds the interface, the access scope and the rank fusion; one adapter per backend:
`QdrantEdgeIndex` (embedded, in-process) and `QdrantServerIndex` (production, qdrant-client).
Both are stores of named collections with atomic aliases; kb/library/indexing.py decides
which collection (index generation) is written and served.
"""

from ingest.index.base import (
    DEFAULT_FUSION,
    INDEX_SCHEMA_VERSION,
    RRF_K,
    AccessScope,
    Fusion,
    IndexHit,
    IndexLocked,
    IndexPoint,
    MissingCollection,
    SnapshotRefused,
    SparseVector,
    UnscopedQueryError,
    VectorIndex,
    point_id_for_chunk,
)

__all__ = [
    "DEFAULT_FUSION",
    "INDEX_SCHEMA_VERSION",
    "RRF_K",
    "AccessScope",
    "Fusion",
    "IndexHit",
    "IndexLocked",
    "IndexPoint",
    "MissingCollection",
    "SnapshotRefused",
    "SparseVector",
    "UnscopedQueryError",
    "VectorIndex",
    "point_id_for_chunk",
]
