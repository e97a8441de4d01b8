"""The vector index. This package is the only code that talks to Qdrant.

`base` holds the interface and the access scope; one adapter per backend:
`QdrantEdgeIndex` (embedded, in-process) and `QdrantServerIndex` (production, qdrant-client).
"""

from ingest.index.base import (
    AccessScope,
    IndexHit,
    IndexPoint,
    UnscopedQueryError,
    VectorIndex,
    point_id_for_chunk,
)

__all__ = [
    "AccessScope",
    "IndexHit",
    "IndexPoint",
    "UnscopedQueryError",
    "VectorIndex",
    "point_id_for_chunk",
]
