"""The vector index. This package is the only code that talks to Qdrant.

`base` holds the interface and the access scope; one adapter per backend:
`QdrantEdgeIndex` (embedded, in-process) and `QdrantServerIndex` (production, qdrant-client).
Both are stores of named collections with atomic aliases; kb/library/indexing.py decides
which collection (index generation) is written and served.
"""

from ingest.index.base import (
    AccessScope,
    IndexHit,
    IndexLocked,
    IndexPoint,
    MissingCollection,
    UnscopedQueryError,
    VectorIndex,
    point_id_for_chunk,
)

__all__ = [
    "AccessScope",
    "IndexHit",
    "IndexLocked",
    "IndexPoint",
    "MissingCollection",
    "UnscopedQueryError",
    "VectorIndex",
    "point_id_for_chunk",
]
