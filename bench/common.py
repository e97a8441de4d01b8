"""What the benchmarks share: a database and data folder of their own, percentiles, output."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def prepare_environment(data_dir: Path, database: str) -> None:
    """Point the product at a fresh PostgreSQL database (when DATABASE_URL names a server)
    and a data folder of the benchmark's own, then set Django up."""
    os.environ["KB_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kb.settings")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    url = os.environ.get("DATABASE_URL")
    if url and url.startswith("postgres"):
        import psycopg

        base, _, _ = url.rpartition("/")
        with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {database}")
        os.environ["DATABASE_URL"] = f"{base}/{database}"
        os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789abcdefghijklmnop")

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def wait_for_versions(version_ids: list[int], timeout: float) -> None:
    """Until none of the versions is queued or in progress."""
    import time

    from kb.library.models import DocumentVersion

    deadline = time.monotonic() + timeout
    pending = DocumentVersion.objects.filter(
        pk__in=version_ids, status__in=DocumentVersion.IN_PROGRESS
    )
    while pending.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out with {pending.count()} documents still in progress")
        time.sleep(0.2)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def machine() -> dict[str, Any]:
    return {"cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count()}


def eval_dir() -> Path | None:
    """The folder of labelled retrieval sets (BEIR format: one folder per set with
    corpus.jsonl, queries.jsonl, qrels/test.tsv), from KB_EVAL_DIR; None when unset."""
    value = os.environ.get("KB_EVAL_DIR")
    return Path(value) if value else None


def write_result(name: str, result: dict[str, Any], out: Path | None = None) -> Path:
    path = out or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
