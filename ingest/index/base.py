"""What every vector index adapter promises, and the access scope that every search carries.

An adapter is a store of named collections plus aliases. The product writes each index
generation (one embedding model, one rebuild) into its own collection and points an alias at
the one being served, so a rebuild or a model change switches over atomically.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

# Fixed namespace: point ids are uuid5(namespace, "version:ordinal"), so re-running an
# ingestion overwrites the same points instead of adding duplicates.
POINT_ID_NAMESPACE = uuid.UUID("0f6e2c1a-5d0b-4c8e-9a57-3f1d2b7c9e40")

DENSE_VECTOR = "dense"
# BM25-style term weights (ingest/lexical.py); Qdrant applies IDF at query time.
SPARSE_VECTOR = "sparse"
# What a collection holds and how its vectors are made. 1: one dense vector per point. 2: the
# dense vector and a sparse lexical one (ingest/lexical.py). The adapters record it with each
# collection they create; a served collection of an older version makes the workers rebuild
# the index into a new collection (kb/library/indexing.py), exactly as a new embedding model
# does. Bump it whenever stored vectors would change (the tokenizer, the BM25 constants).
INDEX_SCHEMA_VERSION = 2
# Reciprocal rank fusion of the dense and the lexical ranking: score = sum of 1 / (k + rank),
# rank counted from 1. 60 is the constant of Cormack et al. (2009): it flattens the head of
# each list, so a passage both channels rank well beats one that a single channel puts first.
RRF_K = 60
# How long an exact count of the points a scope can see is reused (see ScopeSizes).
SCOPE_SIZE_TTL_SECONDS = 30.0

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


class SnapshotRefused(RuntimeError):
    """The index would not take a snapshot back (a Qdrant server refused the upload, or the
    snapshot is of a kind this index cannot read); nothing of that collection was restored."""


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
class SparseVector:
    """A sparse vector as Qdrant stores it: parallel indices and values.

    Checked on construction because Qdrant Edge does not check: a vector whose lengths differ
    makes it panic, and the bad update stays in its write-ahead log, so the shard panics
    again on every open. Indices are unique, sorted, unsigned 32-bit; values finite.
    """

    indices: tuple[int, ...]
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        indices = tuple(self.indices)
        values = tuple(float(v) for v in self.values)
        if len(indices) != len(values):
            raise ValueError(f"sparse vector has {len(indices)} indices but {len(values)} values")
        previous = -1
        for index in indices:
            if not isinstance(index, int) or not previous < index <= 0xFFFFFFFF:
                raise ValueError("sparse vector indices must be unique, sorted, 32-bit unsigned")
            previous = index
        if not all(math.isfinite(v) for v in values):
            raise ValueError("sparse vector values must be finite")
        object.__setattr__(self, "indices", indices)
        object.__setattr__(self, "values", values)

    @property
    def is_empty(self) -> bool:
        return not self.indices


@dataclass(frozen=True)
class IndexPoint:
    point_id: str
    vector: list[float]
    chunk_id: int
    document_id: int
    version_id: int
    collection_id: int
    department_id: int
    # The lexical vector of the same text that was embedded; None or empty: dense only.
    sparse: SparseVector | None = None

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
    # The fused rank score (reciprocal rank fusion, see RRF_K): it orders hits, nothing more.
    score: float
    # Cosine similarity to the question, when the dense channel found the point above its
    # threshold; the lexical score likewise (see `lexical_hits`). One of them is always set.
    dense_score: float | None = None
    lexical_score: float | None = None


def require_scope(scope: object) -> AccessScope:
    """Refuse any search that does not carry an AccessScope (docs/security.md case 2)."""
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


def hit_from_payload(
    point_id: object,
    score: float,
    payload: dict[str, object],
    *,
    dense_score: float | None = None,
    lexical_score: float | None = None,
) -> IndexHit:
    return IndexHit(
        point_id=str(point_id),
        chunk_id=payload_int(point_id, payload, CHUNK_ID),
        document_id=payload_int(point_id, payload, DOCUMENT_ID),
        version_id=payload_int(point_id, payload, VERSION_ID),
        collection_id=payload_int(point_id, payload, COLLECTION_ID),
        score=float(score),
        dense_score=dense_score,
        lexical_score=lexical_score,
    )


def unrecorded_schema_version(has_lexical_vectors: bool) -> int:
    """The version of a collection that carries no record of it: one made before versions
    were recorded (1, dense only), or one whose creation was cut short before the record was
    written (2, the first layout with lexical vectors)."""
    return 2 if has_lexical_vectors else 1


def distinctive_word_idf(points: int) -> float:
    """Qdrant's IDF, ln(1 + (N - n + 0.5) / (n + 0.5)), of a word found in n=1 of N points."""
    return math.log(1 + (max(points, 1) - 0.5) / 1.5)


def lexical_hits(
    results: Iterable[tuple[object, float, dict[str, object]]],
    points_in_scope: int,
    min_score: float | None,
) -> list[IndexHit]:
    """The lexical channel's hits (best first), each scored in distinctive words.

    Qdrant's score is the sum over the question's words of IDF times the passage's BM25
    weight (about 1), and IDF grows with the number of passages, so a raw threshold that
    suits a thousand passages passes nothing in a small collection and everything in a big
    one. Divided by the IDF of a word found in one passage only, the score reads as "this
    many distinctive words of the question, matched": 1 is one word no other passage has, or
    two or three that a few percent of the passages have, whatever the size of the scope.
    The list is best first, so cutting it at `min_score` is what a threshold inside the
    query would give; the access filter is inside the query in any case.
    """
    unit = distinctive_word_idf(points_in_scope)
    hits: list[IndexHit] = []
    for point_id, raw, payload in results:
        score = raw / unit
        if min_score is not None and score < min_score:
            break
        hits.append(hit_from_payload(point_id, score, payload, lexical_score=score))
    return hits


class ScopeSizes:
    """How many points each scope can see, counted exactly and reused for a short while.

    The lexical score needs it (`lexical_hits`); an exact filtered count costs a few
    milliseconds on a large collection, and a scope's size barely moves from one question
    to the next. Writes through the same adapter forget their collection's counts at once;
    other processes' writes show within SCOPE_SIZE_TTL_SECONDS.
    """

    _MAX_ENTRIES = 4096

    def __init__(self, ttl_seconds: float = SCOPE_SIZE_TTL_SECONDS) -> None:
        self._ttl = ttl_seconds
        self._sizes: dict[tuple[str, frozenset[int], frozenset[int]], tuple[int, float]] = {}
        self._lock = threading.Lock()

    def get(
        self,
        collection: str,
        scope: AccessScope,
        exclude_version_ids: frozenset[int],
        count: Callable[[], int],
    ) -> int:
        key = (collection, scope.collection_ids, exclude_version_ids)
        now = time.monotonic()
        with self._lock:
            known = self._sizes.get(key)
        if known is not None and now - known[1] < self._ttl:
            return known[0]
        size = count()
        with self._lock:
            if len(self._sizes) >= self._MAX_ENTRIES:
                self._sizes.clear()
            self._sizes[key] = (size, now)
        return size

    def forget(self, collection: str) -> None:
        with self._lock:
            for key in [k for k in self._sizes if k[0] == collection]:
                del self._sizes[key]


def channel_limit(limit: int) -> int:
    """How deep each channel is searched before fusion: deeper than the final list, so a
    passage ranked fairly well by both channels can overtake one that only one channel saw."""
    return max(4 * limit, 20)


@dataclass(frozen=True)
class Fusion:
    """How the two channels' rankings are fused (reciprocal rank fusion): a hit at rank r
    of a channel adds weight / (rrf_k + r), the dense channel's weight being 1. The right
    values depend on the embedding model (how good its own ranking is), so they are part of
    its calibration (ingest/embedding.py RetrievalCalibration)."""

    lexical_weight: float = 1.0
    rrf_k: int = RRF_K


# Equal weights and the usual k: MiniLM's calibration, and any model without its own.
DEFAULT_FUSION = Fusion()


def fuse_rankings(
    dense: list[IndexHit], lexical: list[IndexHit], limit: int, fusion: Fusion = DEFAULT_FUSION
) -> list[IndexHit]:
    """Reciprocal rank fusion of the two channels' hits (each already filtered by the index),
    weighted by `fusion`.

    A point found by both keeps both channel scores. Ties go to the point with a dense
    score, then to the higher cosine, then to the higher lexical score.
    """
    fused: dict[str, IndexHit] = {}
    scores: dict[str, float] = {}
    for channel, weight in ((dense, 1.0), (lexical, fusion.lexical_weight)):
        for rank, hit in enumerate(channel, start=1):
            scores[hit.point_id] = scores.get(hit.point_id, 0.0) + weight / (fusion.rrf_k + rank)
            seen = fused.get(hit.point_id)
            if seen is None:
                fused[hit.point_id] = hit
            else:
                fused[hit.point_id] = replace(
                    seen,
                    dense_score=seen.dense_score
                    if seen.dense_score is not None
                    else hit.dense_score,
                    lexical_score=seen.lexical_score
                    if seen.lexical_score is not None
                    else hit.lexical_score,
                )
    ordered = sorted(
        fused.values(),
        key=lambda h: (
            -scores[h.point_id],
            h.dense_score is None,
            -(h.dense_score or 0.0),
            -(h.lexical_score or 0.0),
            h.point_id,
        ),
    )
    return [replace(hit, score=scores[hit.point_id]) for hit in ordered[:limit]]


class VectorIndex(Protocol):
    """The contract both adapters pass (tests/ingest/test_index_contract.py)."""

    def create_collection(self, name: str, dimension: int) -> None:
        """Create the collection (dense and sparse vectors, INDEX_SCHEMA_VERSION) and its
        payload indexes if missing; idempotent."""

    def schema_version(self, name: str) -> int:
        """The INDEX_SCHEMA_VERSION the existing collection was created with."""

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
        *,
        sparse: SparseVector | None = None,
        min_lexical_score: float | None = None,
        fusion: Fusion = DEFAULT_FUSION,
    ) -> list[IndexHit]:
        """The best points inside `scope`, best first; `exclude_version_ids` are invisible.

        Two channels, each a separate index query with the access filter inside it: dense
        (cosine at least `min_score`) and, when `sparse` is not empty and the collection has
        lexical vectors, lexical (at least `min_lexical_score` distinctive words matched, see
        `lexical_hits`, with IDF computed over the points the scope can see, so other
        departments' documents do not even shift the statistics). The two rankings are fused
        with `fuse_rankings` (`fusion`); a point that passes neither threshold is
        never returned.
        """

    def delete_version(self, collection: str, version_id: int) -> None: ...

    def count(
        self, collection: str, *, document_id: int | None = None, version_id: int | None = None
    ) -> int: ...

    def version_counts(self, collection: str) -> dict[int, int]:
        """Points per document version: how a rebuild and the crash tests check the index."""

    # --- backup (kb/ops/backup.py) ----------------------------------------------------------

    def paused_writes(self, collections: Iterable[str] = ()) -> AbstractContextManager[list[str]]:
        """Hold every write through this adapter still until the block ends, so a copy taken
        meanwhile (`snapshot`, and the database dump beside it) is consistent.

        A write (upsert, delete, collection or alias change) from another thread waits until
        the block ends; the thread inside the block may still write. `collections` are opened
        on entry and the block receives those that exist, in the order given (missing ones
        are skipped). Opening an embedded collection locks it against every other process,
        so nothing else writes it either; IndexLocked, on entry, when another process holds
        it. A Qdrant server's other clients are not held back.
        """

    def snapshot(self, collections: Sequence[str], target: Path) -> list[Path]:
        """Write a consistent copy of `collections`, and of the aliases that point at them,
        into the directory `target` (created if missing); the files written, sorted.

        Each collection is copied while no write through this adapter can change it (see
        `paused_writes`); MissingCollection if one does not exist. What the files hold is
        the adapter's own (`restore` of the same adapter kind reads them back).
        """

    def restore(self, source: Path) -> list[str]:
        """Put back the collections that `snapshot` wrote into `source`, each replacing a
        collection of the same name, and the aliases among them whose collection is now
        here; the names restored, sorted. SnapshotRefused when the index will not take one.
        """

    def close(self) -> None: ...
