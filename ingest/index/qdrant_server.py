"""Production index: a Qdrant server (or cluster) through qdrant-client.

All departments share each collection; `collection_id`, `department_id`, `document_id` and
`version_id` are integer payload indexes, and every search carries a `must` filter on the
caller's collections (Qdrant's multitenancy guidance). Generations are separate collections
behind an alias that `update_collection_aliases` switches in one atomic request. Tested with
qdrant-client's local mode, which serves the same client API in-process.

Hybrid search runs the dense and the lexical query as one batch request, each with the access
filter inside it, and fuses the two rankings here (ingest/index/base.py), as the Edge adapter
does, so both report the same fused score and both channel scores.

Backups (`snapshot`, `restore`) use Qdrant's own collection snapshots, made and recovered
through qdrant-client. qdrant-client's local mode has no snapshots; there a collection is
written out point by point instead (`*.points.jsonl`), which is what the contract tests see.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from ingest.index.base import (
    COLLECTION_ID,
    DEFAULT_FUSION,
    DENSE_VECTOR,
    DOCUMENT_ID,
    INDEX_SCHEMA_VERSION,
    INTEGER_FIELDS,
    SPARSE_VECTOR,
    VERSION_ID,
    AccessScope,
    Fusion,
    IndexHit,
    IndexPoint,
    MissingCollection,
    ScopeSizes,
    SnapshotRefused,
    SparseVector,
    channel_limit,
    fuse_rankings,
    hit_from_payload,
    lexical_hits,
    payload_int,
    require_scope,
    unrecorded_schema_version,
)

_SCROLL_PAGE = 1000
# The collection metadata key that records its INDEX_SCHEMA_VERSION.
_SCHEMA_KEY = "kb_index_schema"
# File names in a snapshot directory: a Qdrant collection snapshot, a collection written out
# point by point (local mode), and the aliases that point at the collections.
SNAPSHOT_SUFFIX = ".snapshot"
POINTS_SUFFIX = ".points.jsonl"
ALIASES_FILE = "aliases.json"
# A snapshot file moves in blocks of this size. Its download may take this long; its upload,
# which returns only once the server has recovered the collection from it, this long.
_TRANSFER_BLOCK = 1024 * 1024
_DOWNLOAD_SECONDS = 600
_UPLOAD_SECONDS = 3600


def _match(key: str, value: int) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def _sparse(vector: SparseVector) -> models.SparseVector:
    return models.SparseVector(indices=list(vector.indices), values=list(vector.values))


@dataclass(frozen=True)
class ClusterLayout:
    """How a new collection is spread over a Qdrant cluster (compose/scale/).

    `shards` None leaves the count to the server (one per node when the collection is
    created). Each shard is kept on `replicas` nodes, and a write is acknowledged once
    `write_consistency` of them have applied it. The defaults are a single node's. It
    applies to collections created from now on: an existing generation keeps its layout
    until `manage.py reindex` rebuilds it (or Qdrant's own shard operations move it).
    """

    shards: int | None = None
    replicas: int = 1
    write_consistency: int = 1

    def __post_init__(self) -> None:
        if self.shards is not None and self.shards < 1:
            raise ValueError(f"shards must be at least 1, not {self.shards}")
        if not 1 <= self.write_consistency <= self.replicas:
            raise ValueError(
                f"write consistency {self.write_consistency} must be between 1 and the "
                f"replication factor {self.replicas}"
            )


class QdrantServerIndex:
    def __init__(self, client: QdrantClient, layout: ClusterLayout | None = None) -> None:
        self.client = client
        self.layout = layout or ClusterLayout()
        # Whether each collection has the lexical vector (schema 2); older ones are dense
        # only. A generation's name is never reused, so the answer never goes stale.
        self._lexical: dict[str, bool] = {}
        self._scope_sizes = ScopeSizes()
        # Held by every write through this adapter, so `paused_writes` can hold them all.
        self._writes = threading.RLock()

    @classmethod
    def from_url(
        cls,
        url: str,
        api_key: str | None,
        timeout: int = 30,
        layout: ClusterLayout | None = None,
    ) -> QdrantServerIndex:
        return cls(QdrantClient(url=url, api_key=api_key, timeout=timeout), layout)

    def _require(self, name: str) -> None:
        if not self.client.collection_exists(name):
            raise MissingCollection(f"index collection {name!r} does not exist")

    # --- collections and aliases --------------------------------------------------------

    def create_collection(self, name: str, dimension: int) -> None:
        with self._writes:
            if self.client.collection_exists(name):
                return
            self._create(
                name, dimension, lexical=True, metadata={_SCHEMA_KEY: INDEX_SCHEMA_VERSION}
            )

    def _create(
        self, name: str, dimension: int, *, lexical: bool, metadata: dict[str, Any] | None
    ) -> None:
        self.client.create_collection(
            name,
            vectors_config={
                DENSE_VECTOR: models.VectorParams(size=dimension, distance=models.Distance.COSINE)
            },
            sparse_vectors_config={
                SPARSE_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)
            }
            if lexical
            else None,
            metadata=metadata,
            shard_number=self.layout.shards,
            replication_factor=self.layout.replicas,
            write_consistency_factor=self.layout.write_consistency,
        )
        # Indexes for the fields every filter uses. (Local mode ignores payload indexes.)
        for key in INTEGER_FIELDS:
            self.client.create_payload_index(name, key, models.PayloadSchemaType.INTEGER)
        self._lexical[name] = lexical

    def _config(self, name: str) -> models.CollectionConfig:
        try:
            return self.client.get_collection(name).config
        except (UnexpectedResponse, ValueError) as exc:
            if not self.client.collection_exists(name):
                raise MissingCollection(f"index collection {name!r} does not exist") from exc
            raise

    def schema_version(self, name: str) -> int:
        config = self._config(name)
        recorded = (config.metadata or {}).get(_SCHEMA_KEY)
        if isinstance(recorded, int):
            return recorded
        return unrecorded_schema_version(self._has_lexical(name))

    def _has_lexical(self, name: str) -> bool:
        known = self._lexical.get(name)
        if known is None:
            sparse = self._config(name).params.sparse_vectors
            known = self._lexical[name] = sparse is not None and SPARSE_VECTOR in sparse
        return known

    def drop_collection(self, name: str) -> None:
        with self._writes:
            self._lexical.pop(name, None)
            self._scope_sizes.forget(name)
            if self.client.collection_exists(name):
                self.client.delete_collection(name)

    def collection_names(self) -> list[str]:
        return sorted(c.name for c in self.client.get_collections().collections)

    def set_alias(self, alias: str, collection: str) -> None:
        with self._writes:
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
        with self._writes:
            try:
                lexical = self._has_lexical(collection)
                structs = []
                for point in points:
                    vectors: dict[str, models.Vector] = {DENSE_VECTOR: point.vector}
                    # A dense-only collection (schema 1, until its rebuild) must not get one.
                    if lexical and point.sparse is not None and not point.sparse.is_empty:
                        vectors[SPARSE_VECTOR] = _sparse(point.sparse)
                    structs.append(
                        models.PointStruct(
                            id=point.point_id, vector=vectors, payload=point.payload()
                        )
                    )
                self.client.upsert(collection, points=structs, wait=True)
            except (UnexpectedResponse, ValueError) as exc:
                if not self.client.collection_exists(collection):
                    raise MissingCollection(f"index collection {collection!r} is gone") from exc
                raise
            finally:
                self._scope_sizes.forget(collection)

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
        access_filter = models.Filter(
            must=[
                models.FieldCondition(
                    key=COLLECTION_ID,
                    match=models.MatchAny(any=sorted(scope.collection_ids)),
                )
            ],
            must_not=must_not,
        )
        hybrid = sparse is not None and not sparse.is_empty and self._has_lexical(collection)
        depth = channel_limit(limit) if hybrid else limit
        requests = [
            models.QueryRequest(
                query=vector,
                using=DENSE_VECTOR,
                filter=access_filter,
                limit=depth,
                score_threshold=min_score,
                with_payload=True,
            )
        ]
        if hybrid and sparse is not None:
            requests.append(
                models.QueryRequest(
                    query=_sparse(sparse),
                    using=SPARSE_VECTOR,
                    filter=access_filter,
                    limit=depth,
                    with_payload=True,
                    # IDF over what the caller may see, not over every department's text.
                    params=models.SearchParams(idf=models.IdfCorpusParams(corpus=access_filter)),
                )
            )
        try:
            responses = self.client.query_batch_points(collection, requests=requests)
        except (UnexpectedResponse, ValueError) as exc:
            if not self.client.collection_exists(collection):
                raise MissingCollection(f"index collection {collection!r} is gone") from exc
            raise
        dense = [
            hit_from_payload(p.id, p.score, dict(p.payload or {}), dense_score=p.score)
            for p in responses[0].points
        ]
        lexical: list[IndexHit] = []
        if hybrid and responses[1].points:
            in_scope = self._scope_sizes.get(
                collection,
                scope,
                exclude_version_ids,
                lambda: self.client.count(collection, count_filter=access_filter, exact=True).count,
            )
            lexical = lexical_hits(
                ((p.id, p.score, dict(p.payload or {})) for p in responses[1].points),
                in_scope,
                min_lexical_score,
            )
        return fuse_rankings(dense, lexical, limit, fusion)

    def delete_version(self, collection: str, version_id: int) -> None:
        with self._writes:
            self._require(collection)
            self.client.delete(
                collection,
                points_selector=models.FilterSelector(
                    filter=models.Filter(must=[_match(VERSION_ID, version_id)])
                ),
                wait=True,
            )
            self._scope_sizes.forget(collection)

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

    # --- backup -------------------------------------------------------------------------

    @contextmanager
    def paused_writes(self, collections: Iterable[str] = ()) -> Iterator[list[str]]:
        with self._writes:
            yield [name for name in collections if self.client.collection_exists(name)]

    def _is_local(self) -> bool:
        # The test that QdrantClient itself applies to choose local mode.
        options = self.client.init_options
        return options.get("location") == ":memory:" or options.get("path") is not None

    def snapshot(self, collections: Sequence[str], target: Path) -> list[Path]:
        with self._writes:
            for name in collections:
                self._require(name)
            target.mkdir(parents=True, exist_ok=True)
            written = []
            for name in collections:
                if self._is_local():
                    written.append(self._write_points(name, target / f"{name}{POINTS_SUFFIX}"))
                else:
                    written.append(
                        self._download_snapshot(name, target / f"{name}{SNAPSHOT_SUFFIX}")
                    )
            aliases = {
                a.alias_name: a.collection_name
                for a in self.client.get_aliases().aliases
                if a.collection_name in collections
            }
            if aliases:
                (target / ALIASES_FILE).write_text(json.dumps(aliases), encoding="utf-8")
                written.append(target / ALIASES_FILE)
            return sorted(written)

    def _download_snapshot(self, name: str, path: Path) -> Path:
        """A new Qdrant snapshot of `name`, downloaded to `path`, then deleted on the server.

        qdrant-client makes, lists and deletes snapshots but cannot download one (its
        generated `get_snapshot` call reads the reply as JSON), so this one request goes over
        HTTP here, to the address and with the credentials the client was configured with.
        """
        made = self.client.create_snapshot(collection_name=name, wait=True)
        if made is None:  # only with wait=False
            raise RuntimeError(f"the Qdrant server made no snapshot of {name}")
        options = self.client.init_options
        headers = {str(k): str(v) for k, v in (options.get("headers") or {}).items()}
        if options.get("api_key"):
            headers["api-key"] = str(options["api_key"])
        url = (
            f"{self.client.http.client.host.rstrip('/')}/collections/{quote(name, safe='')}"
            f"/snapshots/{quote(made.name, safe='')}"
        )
        partial = path.with_name(f".{path.name}.partial")
        try:
            with httpx.stream(
                "GET",
                url,
                headers=headers,
                timeout=_DOWNLOAD_SECONDS,
                verify=options.get("verify", True),
            ) as response:
                response.raise_for_status()
                with partial.open("wb") as out:
                    for block in response.iter_bytes(_TRANSFER_BLOCK):
                        out.write(block)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
            self.client.delete_snapshot(collection_name=name, snapshot_name=made.name, wait=True)
        return path

    def _write_points(self, name: str, path: Path) -> Path:
        """Local mode: the collection's settings, then each point with its vectors, one JSON
        object a line."""
        config = self._config(name)
        vectors = config.params.vectors
        if not isinstance(vectors, dict) or DENSE_VECTOR not in vectors:
            raise ValueError(f"index collection {name!r} has no {DENSE_VECTOR!r} vector")
        header = {
            "collection": name,
            "dimension": vectors[DENSE_VECTOR].size,
            "lexical": self._has_lexical(name),
            "metadata": config.metadata,
        }
        with path.open("w", encoding="utf-8") as out:
            out.write(json.dumps(header) + "\n")
            offset: models.ExtendedPointId | None = None
            while True:
                records, offset = self.client.scroll(
                    name, limit=_SCROLL_PAGE, offset=offset, with_payload=True, with_vectors=True
                )
                for record in records:
                    if not isinstance(record.vector, dict):  # every collection here names them
                        raise ValueError(f"index point {record.id} has no named vectors")
                    stored: dict[str, Any] = {}
                    for key, value in record.vector.items():
                        if isinstance(value, models.SparseVector):
                            stored[key] = {"indices": value.indices, "values": value.values}
                        else:
                            stored[key] = value
                    line = {"id": str(record.id), "vector": stored, "payload": record.payload}
                    out.write(json.dumps(line) + "\n")
                if offset is None:
                    return path

    def restore(self, source: Path) -> list[str]:
        with self._writes:
            restored: list[str] = []
            snapshots = sorted(source.glob(f"*{SNAPSHOT_SUFFIX}"))
            if snapshots:
                restored.extend(self._upload_snapshots(snapshots))
            for path in sorted(source.glob(f"*{POINTS_SUFFIX}")):
                restored.append(self._read_points(path))
            aliases_file = source / ALIASES_FILE
            if aliases_file.is_file():
                saved = json.loads(aliases_file.read_text(encoding="utf-8"))
                for alias, collection in sorted(saved.items()):
                    if self.client.collection_exists(str(collection)):
                        self.set_alias(str(alias), str(collection))
            return sorted(restored)

    def _upload_snapshots(self, snapshots: list[Path]) -> list[str]:
        if self._is_local():
            raise SnapshotRefused("qdrant-client's local mode cannot recover a Qdrant snapshot")
        # A client of its own for the uploads: the server replies once it has recovered the
        # collection, which takes far longer than the usual request timeout.
        uploader = QdrantClient(
            **{
                **self.client.init_options,
                "timeout": _UPLOAD_SECONDS,
                "check_compatibility": False,
            }
        )
        restored = []
        try:
            for path in snapshots:
                name = path.name.removesuffix(SNAPSHOT_SUFFIX)
                self._lexical.pop(name, None)
                self._scope_sizes.forget(name)
                with path.open("rb") as handle:
                    try:
                        uploader.http.snapshots_api.recover_from_uploaded_snapshot(
                            collection_name=name,
                            wait=True,
                            priority=models.SnapshotPriority.SNAPSHOT,
                            snapshot=handle,
                        )
                    except UnexpectedResponse as exc:
                        raise SnapshotRefused(
                            f"the Qdrant server refused the snapshot of {name} "
                            f"({exc.status_code} {exc.reason_phrase})"
                        ) from exc
                restored.append(name)
        finally:
            uploader.close()
        return restored

    def _read_points(self, path: Path) -> str:
        with path.open(encoding="utf-8") as lines:
            header = json.loads(next(lines))
            name = str(header["collection"])
            self.drop_collection(name)
            self._create(
                name,
                int(header["dimension"]),
                lexical=bool(header["lexical"]),
                metadata=header["metadata"],
            )
            batch: list[models.PointStruct] = []
            for line in lines:
                stored = json.loads(line)
                vectors: dict[str, models.Vector] = {}
                for key, value in stored["vector"].items():
                    vectors[key] = (
                        models.SparseVector(**value) if isinstance(value, dict) else value
                    )
                batch.append(
                    models.PointStruct(id=stored["id"], vector=vectors, payload=stored["payload"])
                )
                if len(batch) >= _SCROLL_PAGE:
                    self.client.upsert(name, points=batch, wait=True)
                    batch = []
            if batch:
                self.client.upsert(name, points=batch, wait=True)
        return name

    def close(self) -> None:
        self._lexical.clear()
        self.client.close()
