"""Index generations: which collection serves searches, which receive writes, and rebuilds.

The database is the source of truth; an index collection holds the vectors of one embedding
model for the current version of every document. A rebuild (`manage.py reindex`, or a change
of EMBEDDING_MODEL) fills a new collection while the active one keeps serving, checks that
every current version has exactly its chunk count of points, then switches: one database
transaction marks the new generation active (searches embed with its model from then on),
and the alias `QDRANT_COLLECTION` is pointed at it for anyone reading the index directly.
Ingestion writes to every live generation, so documents indexed during a rebuild are not lost.
A served collection of an older layout (INDEX_SCHEMA_VERSION: dense only before hybrid
retrieval) is rebuilt the same way; until the switch it keeps serving dense-only searches.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from ingest.chunking import embedding_text
from ingest.index import INDEX_SCHEMA_VERSION, IndexPoint, MissingCollection, SparseVector
from ingest.lexical import document_vectors
from kb.library.components import get_embedder, get_index
from kb.library.models import Chunk, DocumentVersion, IndexGeneration

logger = logging.getLogger(__name__)

_REBUILD_LOCK_KEY = 0x6B625F69  # "kb_i": the PostgreSQL advisory lock for rebuilds
_local_rebuild_lock = threading.Lock()
_EMBED_BATCH = 512

Progress = Callable[[int, int], None]


@contextmanager
def _rebuild_lock() -> Iterator[None]:
    """One rebuild at a time across processes (PostgreSQL) or threads (SQLite, one process)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [_REBUILD_LOCK_KEY])
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [_REBUILD_LOCK_KEY])
    else:
        with _local_rebuild_lock:
            yield


def active_generation() -> IndexGeneration:
    """The generation searches use; on a new installation, build the first one."""
    generation = IndexGeneration.objects.filter(state=IndexGeneration.State.ACTIVE).first()
    if generation is None:
        generation = rebuild_index()
    return generation


def ensure_index() -> IndexGeneration:
    """At start-up: the served collection must exist and carry the alias.

    If the index was lost (a wiped volume, a restored database without its index), rebuild
    it from the database before serving, instead of failing every search.
    """
    generation = active_generation()
    index = get_index()
    if generation.collection_name not in index.collection_names():
        logger.error(
            "the served index collection %s is missing: rebuilding it from the database",
            generation.collection_name,
        )
        generation = rebuild_index(generation.model_name)
    elif index.alias_target(settings.QDRANT_COLLECTION) != generation.collection_name:
        index.set_alias(settings.QDRANT_COLLECTION, generation.collection_name)
    return generation


def live_generations() -> list[IndexGeneration]:
    """Generations that must receive every write: the active one and any being built."""
    return list(
        IndexGeneration.objects.filter(
            state__in=[IndexGeneration.State.ACTIVE, IndexGeneration.State.BUILDING]
        ).order_by("id")
    )


def hidden_version_ids() -> frozenset[int]:
    """Versions whose points exist but must not be found (being built, or just replaced).

    Normally empty or tiny: it holds only versions in the middle of a switch or a cleanup.
    """
    return frozenset(
        DocumentVersion.objects.filter(index_state=DocumentVersion.IndexState.HIDDEN).values_list(
            "id", flat=True
        )
    )


def _points(
    version: DocumentVersion,
    chunks: list[Chunk],
    vectors: list[list[float]],
    sparse: list[SparseVector],
) -> list[IndexPoint]:
    document = version.document
    return [
        IndexPoint(
            point_id=chunk.point_id,
            vector=vector,
            chunk_id=chunk.pk,
            document_id=document.pk,
            version_id=version.pk,
            collection_id=document.collection_id,
            department_id=document.collection.department_id,
            sparse=lexical,
        )
        for chunk, vector, lexical in zip(chunks, vectors, sparse, strict=True)
    ]


def chunk_texts(version: DocumentVersion, chunks: list[Chunk]) -> list[str]:
    """What the model embeds, and what the lexical vector is made of: each chunk with its
    document title and section path."""
    return [embedding_text(version.document.title, c.section_path, c.text) for c in chunks]


def write_version(
    version: DocumentVersion,
    chunks: list[Chunk],
    vectors_by_model: dict[str, list[list[float]]],
    generations: list[IndexGeneration],
) -> None:
    """Replace the version's points in every given generation with the precomputed vectors
    and the lexical vectors of the same texts (they do not depend on the model).

    A generation dropped since the list was read (a rebuild finished) is skipped: it no
    longer serves anyone.
    """
    index = get_index()
    sparse = document_vectors(chunk_texts(version, chunks))
    for generation in generations:
        vectors = vectors_by_model[generation.model_name]
        try:
            # A retry may have fewer chunks than the crashed attempt: clear its points first.
            index.delete_version(generation.collection_name, version.pk)
            index.upsert(generation.collection_name, _points(version, chunks, vectors, sparse))
        except MissingCollection:
            if generation.state == IndexGeneration.State.ACTIVE:
                raise
            logger.info("generation %s vanished during a write", generation.collection_name)


def remove_version_points(version_id: int) -> None:
    index = get_index()
    for generation in live_generations():
        try:
            index.delete_version(generation.collection_name, version_id)
        except MissingCollection:
            logger.info("generation %s is gone; nothing to remove", generation.collection_name)


def _fill(
    generation: IndexGeneration, version_ids: list[int], progress: Progress | None, total: int
) -> int:
    """Embed and write the chunks of `version_ids` into `generation`; return points written."""
    embedder = get_embedder(generation.model_name)
    written = 0
    for version in (
        DocumentVersion.objects.filter(pk__in=version_ids)
        .select_related("document__collection")
        .iterator(chunk_size=200)
    ):
        chunks = list(version.chunks.order_by("ordinal"))
        vectors: list[list[float]] = []
        texts = chunk_texts(version, chunks)
        for start in range(0, len(texts), _EMBED_BATCH):
            vectors.extend(embedder.embed_documents(texts[start : start + _EMBED_BATCH]))
        write_version(version, chunks, {generation.model_name: vectors}, [generation])
        written += len(chunks)
        if progress is not None:
            progress(written, total)
    return written


def verify_generation(generation: IndexGeneration) -> tuple[list[int], list[int]]:
    """(versions missing points or with wrong counts, versions with points but no business
    being there) for `generation`, comparing the index with the database."""
    counts = get_index().version_counts(generation.collection_name)
    live = dict(
        DocumentVersion.objects.filter(index_state=DocumentVersion.IndexState.LIVE).values_list(
            "id", "chunk_count"
        )
    )
    hidden = hidden_version_ids()
    wrong = [vid for vid, expected in live.items() if counts.get(vid, 0) != expected]
    stray = [vid for vid in counts if vid not in live and vid not in hidden]
    return wrong, stray


def _repair(generation: IndexGeneration, progress: Progress | None = None) -> None:
    wrong, stray = verify_generation(generation)
    index = get_index()
    for version_id in stray:
        index.delete_version(generation.collection_name, version_id)
    if wrong:
        logger.info("index %s: rewriting %d versions", generation.collection_name, len(wrong))
        _fill(generation, wrong, progress, len(wrong))


def rebuild_index(
    model_name: str | None = None, progress: Progress | None = None
) -> IndexGeneration:
    """Build a new generation from the database with `model_name` and switch to it.

    Safe to run again after a crash: a generation left building for the same model is
    resumed (upserts are idempotent), not duplicated.
    """
    model_name = settings.EMBEDDING_MODEL if model_name is None else model_name
    embedder = get_embedder(model_name)
    index = get_index()
    with _rebuild_lock():
        existing = set(index.collection_names())
        generation = next(
            (
                building
                for building in IndexGeneration.objects.filter(
                    state=IndexGeneration.State.BUILDING, model_id=embedder.model_id
                ).order_by("id")
                # One left by an older release may have the old layout: start afresh then.
                if building.collection_name not in existing
                or index.schema_version(building.collection_name) == INDEX_SCHEMA_VERSION
            ),
            None,
        )
        abandoned = IndexGeneration.objects.filter(state=IndexGeneration.State.BUILDING)
        if generation is not None:
            abandoned = abandoned.exclude(pk=generation.pk)
        for stale in abandoned:
            # Left by a rebuild to another model or layout: it can never be served now.
            _retire(stale)
        if generation is None:
            with transaction.atomic():
                generation = IndexGeneration.objects.create(
                    collection_name=f"{settings.QDRANT_COLLECTION}__pending",
                    model_name=model_name,
                    model_id=embedder.model_id,
                    dimension=embedder.dimension,
                )
                generation.collection_name = f"{settings.QDRANT_COLLECTION}__g{generation.pk}"
                generation.save(update_fields=["collection_name"])
        index.create_collection(generation.collection_name, generation.dimension)
        logger.info("building index %s with %s", generation.collection_name, generation.model_id)

        # Writers now include this generation (it is committed as building), so everything
        # current at this moment or later reaches it: from this scan or from the writer.
        live_versions = list(
            DocumentVersion.objects.filter(index_state=DocumentVersion.IndexState.LIVE).values_list(
                "id", "chunk_count"
            )
        )
        total = sum(count for _, count in live_versions)
        _fill(generation, [vid for vid, _ in live_versions], progress, total)
        _repair(generation)
        generation = _switch(generation)
        # An ingestion that began before this generation existed and finished after the
        # check above wrote only to the old one; catch it now rather than at the next rebuild.
        _repair(generation)
        return generation


def _switch(generation: IndexGeneration) -> IndexGeneration:
    index = get_index()
    with transaction.atomic():
        previous = list(
            IndexGeneration.objects.select_for_update().filter(state=IndexGeneration.State.ACTIVE)
        )
        for old in previous:
            old.state = IndexGeneration.State.RETIRED
            old.retired_at = timezone.now()
            old.save(update_fields=["state", "retired_at"])
        generation.state = IndexGeneration.State.ACTIVE
        generation.activated_at = timezone.now()
        generation.point_count = index.count(generation.collection_name)
        generation.save(update_fields=["state", "activated_at", "point_count"])
        DocumentVersion.objects.filter(index_state=DocumentVersion.IndexState.LIVE).update(
            embedding_model=generation.model_id
        )
    index.set_alias(settings.QDRANT_COLLECTION, generation.collection_name)
    for old in previous:
        index.drop_collection(old.collection_name)
    logger.info(
        "index %s is active: %d points (%s)",
        generation.collection_name,
        generation.point_count,
        generation.model_id,
    )
    return generation


def _retire(generation: IndexGeneration) -> None:
    IndexGeneration.objects.filter(pk=generation.pk).update(
        state=IndexGeneration.State.RETIRED, retired_at=timezone.now()
    )
    get_index().drop_collection(generation.collection_name)


def configured_model_differs() -> bool:
    """True when the served index must be rebuilt: EMBEDDING_MODEL (or the files behind it)
    no longer matches it, or it was built with an older INDEX_SCHEMA_VERSION (an upgraded
    installation's dense-only collection gets its lexical vectors this way, once)."""
    active = IndexGeneration.objects.filter(state=IndexGeneration.State.ACTIVE).first()
    if active is None:
        return False
    if active.model_id != get_embedder().model_id:
        return True
    try:
        return get_index().schema_version(active.collection_name) != INDEX_SCHEMA_VERSION
    except MissingCollection:
        return False  # switched away since the read above, or lost: ensure_index() rebuilds
