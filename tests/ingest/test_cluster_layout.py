"""A Qdrant cluster's layout reaches the server when a generation is created.

No Qdrant server (let alone a cluster) runs here, and qdrant-client's local mode accepts but
drops shard_number, replication_factor and write_consistency_factor. So the client below is
a real local-mode QdrantClient that also keeps the arguments of each create_collection call:
the adapter is exercised end to end, and what it asked the server for is checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient

from ingest.index import AccessScope, IndexPoint, point_id_for_chunk
from ingest.index.qdrant_server import ClusterLayout, QdrantServerIndex


class RecordingClient(QdrantClient):
    def __init__(self, path: str) -> None:
        super().__init__(path=path)
        self.created: list[dict[str, Any]] = []

    # Takes whatever the real method takes and passes it on unchanged.
    def create_collection(self, collection_name: str, **kwargs: Any) -> bool:  # type: ignore[override]
        self.created.append({"name": collection_name, **kwargs})
        return super().create_collection(collection_name, **kwargs)


def test_a_new_generation_is_created_with_the_configured_layout(tmp_path: Path) -> None:
    client = RecordingClient(str(tmp_path / "local"))
    index = QdrantServerIndex(client, ClusterLayout(shards=6, replicas=2, write_consistency=2))
    index.create_collection("kb_chunks__g1", 4)
    index.create_collection("kb_chunks__g1", 4)  # already there: not created twice
    assert len(client.created) == 1
    call = client.created[0]
    layout = (call["shard_number"], call["replication_factor"], call["write_consistency_factor"])
    assert layout == (6, 2, 2)
    # The collection is usable as before: the layout changes where points live, not what.
    index.upsert(
        "kb_chunks__g1", [IndexPoint(point_id_for_chunk(1, 0), [1, 0, 0, 0], 1, 1, 1, 7, 1)]
    )
    hits = index.search("kb_chunks__g1", [1, 0, 0, 0], AccessScope(frozenset({7})), limit=3)
    assert [hit.chunk_id for hit in hits] == [1]
    index.close()


def test_the_default_layout_is_a_single_nodes(tmp_path: Path) -> None:
    client = RecordingClient(str(tmp_path / "local"))
    QdrantServerIndex(client).create_collection("kb_chunks__g1", 4)
    call = client.created[0]
    # No shard count: the server picks one per node; one copy, acknowledged by it.
    layout = (call["shard_number"], call["replication_factor"], call["write_consistency_factor"])
    assert layout == (None, 1, 1)
    client.close()


@pytest.mark.parametrize(("shards", "replicas", "consistency"), [(0, 1, 1), (3, 2, 3), (3, 1, 0)])
def test_an_impossible_layout_is_refused(shards: int, replicas: int, consistency: int) -> None:
    with pytest.raises(ValueError):
        ClusterLayout(shards=shards, replicas=replicas, write_consistency=consistency)
