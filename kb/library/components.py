"""Process-wide backends chosen by settings: embedders, the vector index, the parser sandbox.

Built lazily and once per process; everything else asks here instead of constructing clients.
"""

from __future__ import annotations

import threading
from functools import lru_cache

from django.conf import settings

from ingest.embedding import Embedder, embedder_for
from ingest.index import VectorIndex
from ingest.parsing import ParseOptions
from ingest.safety import ArchiveLimits
from ingest.sandbox import IsolatedRunner, SandboxLimits

_lock = threading.Lock()
_index: VectorIndex | None = None
_parser: IsolatedRunner | None = None


def get_embedder(model_name: str | None = None) -> Embedder:
    """The embedder for `model_name` (an EMBEDDING_MODEL value); None means the configured one.

    One per model and process, because a rebuild to a new model embeds with both until it
    switches; each holds its model once and runs one model thread.
    """
    return _embedder(settings.EMBEDDING_MODEL if model_name is None else model_name)


@lru_cache(maxsize=4)
def _embedder(model_name: str) -> Embedder:
    return embedder_for(
        model_name, device=settings.EMBEDDING_DEVICE, batch_size=settings.EMBEDDING_BATCH_SIZE
    )


def forget_embedders() -> None:
    """Drop cached embedders, so the next call reads EMBEDDING_MODEL again (tests)."""
    _embedder.cache_clear()


def get_index() -> VectorIndex:
    global _index
    with _lock:
        if _index is None:
            if settings.QDRANT_URL:
                # deferred: only the configured backend's client library is loaded
                from ingest.index.qdrant_server import ClusterLayout, QdrantServerIndex

                layout = ClusterLayout(
                    shards=settings.QDRANT_SHARDS or None,
                    replicas=settings.QDRANT_REPLICAS,
                    write_consistency=settings.QDRANT_WRITE_CONSISTENCY,
                )
                _index = QdrantServerIndex.from_url(
                    settings.QDRANT_URL, settings.QDRANT_API_KEY, layout=layout
                )
            else:
                # deferred: only the configured backend's client library is loaded
                from ingest.index.qdrant_edge import QdrantEdgeIndex

                _index = QdrantEdgeIndex(settings.QDRANT_EDGE_PATH)
        return _index


def close_index() -> None:
    """Release the index (tests, and shutdown of the embedded process)."""
    global _index
    with _lock:
        if _index is not None:
            _index.close()
            _index = None


def archive_limits() -> ArchiveLimits:
    return ArchiveLimits(
        max_entries=settings.KB_MAX_ARCHIVE_ENTRIES,
        max_total_bytes=settings.KB_MAX_ARCHIVE_MB * 1024 * 1024,
        max_ratio=settings.KB_MAX_COMPRESSION_RATIO,
    )


def parse_options() -> ParseOptions:
    return ParseOptions(
        ocr_languages=tuple(settings.KB_OCR_LANGUAGES),
        ocr_dpi=settings.KB_OCR_DPI,
        max_pages=settings.KB_MAX_PAGES,
        max_image_pixels=settings.KB_MAX_IMAGE_PIXELS,
        archive_limits=archive_limits(),
    )


def get_parser() -> IsolatedRunner:
    """This process's isolated parser (one child process, restarted when a file kills it)."""
    global _parser
    with _lock:
        if _parser is None:
            _parser = IsolatedRunner(
                SandboxLimits(
                    memory_mb=settings.KB_PARSE_MEMORY_MB,
                    timeout_seconds=settings.KB_PARSE_TIMEOUT_SECONDS,
                ),
                # No network in the child, not even loopback (kb/ops/offline.py).
                prelude="kb.ops.offline:install_in_parser",
            )
        return _parser


def close_parser() -> None:
    global _parser
    with _lock:
        if _parser is not None:
            _parser.close()
            _parser = None
