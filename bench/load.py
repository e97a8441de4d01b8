"""Load test: 50 simulated employees against a server on PostgreSQL and Redis.

Starts the product the way `make run` does but on PostgreSQL and a Redis broker (database
kb_load, Redis database 13), seeds the demo departments, users and collections, then runs
Locust headless (bench/locustfile.py): each user signs in and mixes streamed questions,
passage searches and page views. Writes bench/results/load.json: `users`, `errors`, and per
endpoint `p50_ms` and `p95_ms` (Locust's own percentiles) with request counts.

Answers are extractive here (no language model on this machine's budget): the figures measure
the product's own path (sign-in, retrieval with the access filter, audit, pages), not model
generation, which vLLM serves on the GPU machine.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/kb .venv/bin/python bench/load.py \\
        [--users 50] [--minutes 3]
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: find bench/
from bench.common import ROOT, machine, prepare_environment, write_result

PORT = 8765


def _wait_until_up(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback)
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"the server did not come up at {url}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--minutes", type=float, default=3.0)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="kb-load-"))
    os.environ["CELERY_BROKER_URL"] = "redis://127.0.0.1:6379/13"
    # The embedded index lives in one process: the server runs its own worker thread too.
    os.environ["KB_EMBEDDED_WORKER"] = "true"
    prepare_environment(data_dir, "kb_load")
    from django.core.management import call_command

    call_command("seed_demo", verbosity=0)
    from kb.library.components import close_index

    close_index()  # Qdrant Edge: one process at a time, and the server is the one
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "WARNING"}
    server = subprocess.Popen(  # noqa: S603
        [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(PORT)],
        cwd=ROOT,
        env=env,
    )
    try:
        _wait_until_up(f"http://127.0.0.1:{PORT}/healthz", 180)
        prefix = data_dir / "locust"
        command = [
            sys.executable, "-m", "locust", "-f", str(ROOT / "bench" / "locustfile.py"),
            "--headless", "--users", str(args.users), "--spawn-rate", "10",
            "--run-time", f"{int(args.minutes * 60)}s", "--host", f"http://127.0.0.1:{PORT}",
            "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING",
        ]  # fmt: skip
        subprocess.run(command, cwd=ROOT, check=False)  # noqa: S603
        with open(f"{prefix}_stats.csv", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
    endpoints = {
        row["Name"]: {
            "requests": int(row["Request Count"]),
            "failures": int(row["Failure Count"]),
            "p50_ms": float(row["50%"]),
            "p95_ms": float(row["95%"]),
        }
        for row in rows
        if row["Name"] != "Aggregated"
    }
    total = next(row for row in rows if row["Name"] == "Aggregated")
    result = {
        "users": args.users,
        "minutes": args.minutes,
        "errors": int(total["Failure Count"]),
        "requests": int(total["Request Count"]),
        "requests_per_second": round(float(total["Requests/s"]), 2),
        "answers": "extractive (no language model)",
        "server": "manage.py serve (waitress, embedded worker and Qdrant Edge), PostgreSQL, Redis",
        "machine": machine(),
        "endpoints": endpoints,
    }
    path = write_result("load", result)
    print(f"{result['requests']} requests, {result['errors']} errors -> {path}")


if __name__ == "__main__":
    main()
