"""QDRANT_SHARDS, QDRANT_REPLICAS and QDRANT_WRITE_CONSISTENCY configure the server index."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.index.qdrant_server import ClusterLayout, QdrantServerIndex

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cluster_index(settings: pytest.FixtureRequest) -> Iterator[None]:
    from kb.library import components

    components.close_index()
    # Nothing listens there: building the client does not connect, and nothing here queries.
    settings.QDRANT_URL = "http://127.0.0.1:9"  # type: ignore[attr-defined]
    settings.QDRANT_SHARDS = 6  # type: ignore[attr-defined]
    settings.QDRANT_REPLICAS = 2  # type: ignore[attr-defined]
    settings.QDRANT_WRITE_CONSISTENCY = 2  # type: ignore[attr-defined]
    yield
    components.close_index()


def test_the_app_builds_its_server_index_with_the_configured_layout(cluster_index: None) -> None:
    from kb.library.components import get_index

    index = get_index()
    assert isinstance(index, QdrantServerIndex)
    assert index.layout == ClusterLayout(shards=6, replicas=2, write_consistency=2)


def test_more_acknowledgements_than_copies_is_refused_at_start(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "QDRANT_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="kb.settings",
        KB_DATA_DIR=str(tmp_path),
        QDRANT_REPLICAS="2",
        QDRANT_WRITE_CONSISTENCY="3",
    )
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "QDRANT_WRITE_CONSISTENCY must not exceed QDRANT_REPLICAS" in result.stderr
