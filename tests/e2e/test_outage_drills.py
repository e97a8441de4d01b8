"""Outage drills, short (docs/security.md case 12): bench/drills.py with brief phases.

Real processes throughout: PostgreSQL (a database of the drill's own), a redis-server the
drill starts and kills, llama.cpp's server killed and started again, the app under
`manage.py serve` (embedded Celery worker, Qdrant Edge) and, for the index drill, uvicorn and a
separate `celery worker` whose Qdrant server is unreachable. The assertions are the drill's
promises: clear errors, sources-only answers while only the model is down, nothing accepted
lost, recovery, and the index matching the database afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from bench.drills import run

pytestmark = [pytest.mark.e2e, pytest.mark.drill]

ERRORS = ("5xx", "timeout", "connection", "unexpected")


def _modes(phase: dict[str, Any]) -> set[str]:
    return {mode.split(":", 1)[1] for mode in phase["answer_modes"] if ":" in mode}


def _errors(phase: dict[str, Any]) -> dict[str, int]:
    return {kind: phase["outcomes"].get(kind, 0) for kind in ERRORS if phase["outcomes"].get(kind)}


def test_outage_drills(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith("postgres"):
        pytest.skip("the drills need PostgreSQL (DATABASE_URL)")
    # A database of the drill's own, named after the one the tests were given, so that two
    # runs against different databases do not drop each other's.
    database = f"{database_url.rsplit('/', 1)[1].split('?')[0]}_outage_drills"
    args = argparse.Namespace(
        users=4, baseline=4.0, outage=12.0, recovery_limit=240.0, stale_seconds=10,
        database=database, models_dir=str(tmp_path / "models"),
        drills=["llm", "redis", "index"],
    )  # fmt: skip
    result = run(args, database_url)
    logs = result["logs"]

    llm = result["llm"]
    # While only the model is down every question is still answered, from the sources.
    assert _errors(llm["outage"]) == {}, (llm, logs)
    assert llm["outage"]["outcomes"].get("refused_clearly", 0) == 0, llm
    assert _modes(llm["outage"]) <= {"extractive", "accepted"}, llm
    assert "extractive" in _modes(llm["outage"]), llm
    assert any("degraded (llm down)" in state for state in llm["outage"]["readyz"]), llm
    assert "generated" in _modes(llm["recovery"]), llm
    assert llm["lost"] == 0

    redis = result["redis"]
    # Asks and searches need no Redis; uploads are kept (or refused with a clear 503). The
    # embedded worker, stopped by the lost connection, is started again and catches up.
    assert redis["errors"] == dict.fromkeys(ERRORS, 0), (redis, logs)
    assert redis["outage"]["outcomes"].get("ok", 0) > 0, redis
    assert any("broker down" in state for state in redis["outage"]["readyz"]), redis
    assert redis["uploads_accepted"] > 0
    assert redis["lost"] == 0, (redis, logs)
    assert redis["time_to_recover_s"] is not None, redis

    index = result["index"]
    # Without the index, searches and asks are refused clearly, never a 500 or a hang, and
    # uploads are still accepted; after the index is back nothing accepted is missing.
    assert index["errors"] == dict.fromkeys(ERRORS, 0), (index, logs)
    assert index["outage"]["outcomes"].get("refused_clearly", 0) > 0, index
    assert any(
        "vector_index" in state and state.startswith("503") for state in index["outage"]["readyz"]
    ), index
    assert "accepted" in _modes(index["outage"]), index
    assert index["lost"] == 0, (index, logs)
    assert index["time_to_recover_s"] is not None, index

    # Every upload accepted in any phase of any drill ends indexed once the load stops.
    assert result["after_the_load"]["all_indexed"], (result["after_the_load"], logs)

    check = result["index_check"]
    assert check["versions_with_mismatch"] == [], check
    assert check["database_chunks"] == check["index_points"] > 0, check
