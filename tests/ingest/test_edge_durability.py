"""Writes to the embedded index survive a killed process between flushes.

The Qdrant Edge adapter flushes at most every FLUSH_INTERVAL_SECONDS (a flush holds the GIL
and stalls the embedding model); what is written in between lives in the shard's write-ahead
log, which the next open replays. This kills a writer right after such unflushed writes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from ingest.index.qdrant_edge import FLUSH_INTERVAL_SECONDS, QdrantEdgeIndex

WRITER = """
import sys, time
from pathlib import Path
from ingest.index import IndexPoint, point_id_for_chunk
from ingest.index.qdrant_edge import QdrantEdgeIndex
index = QdrantEdgeIndex(Path(sys.argv[1]))
index.create_collection("c", 4)
for version in range(1, 6):  # five versions of 20 points, all inside one flush interval
    index.delete_version("c", version)
    index.upsert("c", [
        IndexPoint(point_id_for_chunk(version, i), [1.0, float(i), 0.5, float(version)],
                   chunk_id=version * 100 + i, document_id=version, version_id=version,
                   collection_id=1, department_id=1)
        for i in range(20)
    ])
print("written", flush=True)
time.sleep(120)
"""


def test_points_written_between_flushes_survive_a_killed_process(tmp_path: Path) -> None:
    assert FLUSH_INTERVAL_SECONDS >= 1  # the writes below fall inside one interval
    root = Path(__file__).resolve().parents[2]
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "written"
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL

    index = QdrantEdgeIndex(tmp_path)
    try:
        assert index.count("c") == 100
        assert index.version_counts("c") == {version: 20 for version in range(1, 6)}
    finally:
        index.close()
