"""Process-wide backends chosen by settings: the embedder and the vector index.

Built lazily and once per process; everything else asks here instead of constructing clients.
"""

from __future__ import annotations

import threading
from functools import lru_cache

from django.conf import settings

from ingest.embedding import SentenceTransformersEmbedder
from ingest.index import VectorIndex

_index_lock = threading.Lock()
_index: VectorIndex | None = None


@lru_cache(maxsize=1)
def get_embedder() -> SentenceTransformersEmbedder:
    return SentenceTransformersEmbedder(
        model=settings.EMBEDDING_MODEL,
        device=settings.EMBEDDING_DEVICE,
        batch_size=settings.EMBEDDING_BATCH_SIZE,
    )


def get_index() -> VectorIndex:
    global _index
    with _index_lock:
        if _index is None:
            index: VectorIndex
            if settings.QDRANT_URL:
                from ingest.index.qdrant_server import QdrantServerIndex

                index = QdrantServerIndex.from_url(
                    settings.QDRANT_URL, settings.QDRANT_API_KEY, settings.QDRANT_COLLECTION
                )
            else:
                from ingest.index.qdrant_edge import QdrantEdgeIndex

                index = QdrantEdgeIndex(settings.QDRANT_EDGE_PATH)
            index.ensure_ready(get_embedder().dimension)
            _index = index
        return _index


def close_index() -> None:
    """Release the index (tests, and shutdown of the embedded process)."""
    global _index
    with _index_lock:
        if _index is not None:
            _index.close()
            _index = None
