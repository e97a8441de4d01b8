"""Workers killed with SIGKILL mid-document, then restarted (docs/security.md case 11).

A real `celery worker` process consumes from Redis and writes to PostgreSQL and to its own
Qdrant Edge index. The test kills it while a document is being parsed (OCR), while one is
being embedded, and inside the index write of a new version (its old points cleared, or its
new points written but not yet live), restarts it under the same node name, and checks that
every document ends in exactly one final state with as many index points as database chunks:
no duplicates, no orphans. A file whose worker dies three times is quarantined and the rest
still complete. The index is opened by the test only once the worker has stopped (Qdrant Edge
allows one process at a time).
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from django.conf import settings
from django.db import connection

from kb.celery import app
from kb.library.indexing import active_generation, verify_generation
from kb.library.models import Chunk, Collection, DocumentVersion
from kb.library.services import upload_document
from tests.conftest import index_count, wait_for_version
from tests.e2e.conftest import require_real_services
from tests.make_files import FONT_LATIN, write_scanned_pdf

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]
NODE = "crash-test@localhost"


def _still_running(process: psutil.Process) -> bool:
    try:
        return bool(process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


class WorkerProcess:
    """`celery -A kb worker` as production runs it, pointed at the test database."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, pause: dict[str, str] | None = None) -> WorkerProcess:
        """`pause`: KB_TEST_PAUSE_* variables that stop this run of the worker inside an
        index write (tests/e2e/celery_paused_in_index_write.py); otherwise plain celery."""
        offset = self.log.stat().st_size if self.log.exists() else 0
        module = "tests.e2e.celery_paused_in_index_write" if pause else "celery"
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable, "-m", module, "-A", "kb", "worker", "--pool=solo",
                    "-n", NODE, "--without-heartbeat", "--without-mingle", "--without-gossip",
                    "--loglevel=INFO",
                ],
                cwd=ROOT, env={**self.env, **(pause or {})}, stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 120
        while f"{NODE} ready".encode() not in self.log.read_bytes()[offset:]:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"worker did not start:\n{self.tail()}")
            time.sleep(0.2)
        return self

    def kill(self) -> None:
        """SIGKILL the worker; its parser child must not outlive it."""
        assert self.process is not None
        children = psutil.Process(self.process.pid).children(recursive=True)
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()
        _, alive = psutil.wait_procs(children, timeout=10)
        # A child that exited but is not yet reaped (a zombie, waiting for whichever process
        # adopted it; in a container that may be slow) has stopped: it is not an orphan.
        running = [p for p in alive if _still_running(p)]
        assert not running, f"orphaned after the worker died: {running}"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # warm shutdown
            self.process.wait(timeout=60)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture
def worker(fresh_index: None, tmp_path: Path) -> Iterator[WorkerProcess]:
    require_real_services()
    app.control.purge()  # leftovers of earlier tests must not be what this worker runs
    database = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/"
        f"{database['NAME']}",
        "QDRANT_EDGE_PATH": str(settings.QDRANT_EDGE_PATH),
        "KB_FILES_DIR": str(settings.MEDIA_ROOT),
        "KB_PURGE_GRACE_SECONDS": "0",
    }
    process = WorkerProcess(env, tmp_path / "worker.log")
    yield process
    process.stop()


def upload(collection: Collection, name: str, content: bytes) -> int:
    return upload_document(
        collection=collection,
        name=name,
        stream=io.BytesIO(content),
        size=len(content),
        uploaded_by_id=None,
    ).version.pk


# Paragraphs of a document whose embedding outlasts several progress reports (one every
# 2 s, kb/library/ingestion.py), so `kill_when` can see it half-embedded: about 115 chunks,
# several seconds of CPU embedding. (160 paragraphs, 29 chunks, once embedded in 1.3 s,
# before its first progress report, and the kill was missed.)
LONG_DOCUMENT_PARAGRAPHS = 640


def long_document(topic: str, paragraphs: int) -> bytes:
    body = "\n\n".join(
        f"Section {i} of the {topic} manual explains step {i} in detail. Operators check the "
        f"gauge, record reading {i} in the log, and escalate readings above {i + 40} units."
        for i in range(paragraphs)
    )
    return f"# {topic} manual\n\n{body}\n".encode()


def kill_when(worker: WorkerProcess, version_id: int, status: str, min_progress: int = 0) -> None:
    deadline = time.monotonic() + 120
    while True:
        version = DocumentVersion.objects.get(pk=version_id)
        if version.status == status and version.progress >= min_progress:
            worker.kill()
            return
        if version.status in DocumentVersion.FINAL or time.monotonic() > deadline:
            raise AssertionError(f"missed {status}: {version.status}\n{worker.tail()}")
        time.sleep(0.02)


def assert_consistent(version_ids: list[int]) -> None:
    for version_id in version_ids:
        version = DocumentVersion.objects.get(pk=version_id)
        assert version.status in DocumentVersion.FINAL, (version_id, version.status)
    live = DocumentVersion.objects.filter(index_state="live")
    assert index_count() == Chunk.objects.filter(version__in=live).count()
    assert verify_generation(active_generation()) == ([], [])  # no missing, no strays


def test_a_worker_killed_while_parsing_and_while_embedding_recovers_cleanly(
    worker: WorkerProcess, finance_collection: Collection, tmp_path: Path
) -> None:
    scanned = write_scanned_pdf(
        tmp_path / "s.pdf",
        [(["Boiler inspection report", "Pressure within limits."], FONT_LATIN)] * 3,
    ).read_bytes()
    ids = [
        upload(finance_collection, "inspection.pdf", scanned),
        upload(finance_collection, "boiler.md", long_document("Boiler", LONG_DOCUMENT_PARAGRAPHS)),
        upload(finance_collection, "notes.txt", b"The plant closes at six on Fridays.\n"),
    ]
    worker.start()
    kill_when(worker, ids[0], "parsing")  # in the middle of OCR
    worker.start()
    kill_when(worker, ids[1], "embedding", min_progress=40)  # half-embedded
    worker.start()
    for version_id in ids:
        assert wait_for_version(version_id).status == "indexed", worker.tail()
    worker.stop()

    attempts = {v.original_name: v.attempts for v in DocumentVersion.objects.all()}
    assert attempts == {"inspection.pdf": 2, "boiler.md": 2, "notes.txt": 1}
    assert_consistent(ids)


def test_a_file_that_kills_its_worker_three_times_is_quarantined(
    worker: WorkerProcess, finance_collection: Collection
) -> None:
    deadly = upload(
        finance_collection, "deadly.md", long_document("Turbine", LONG_DOCUMENT_PARAGRAPHS)
    )
    others = [
        upload(finance_collection, f"note-{i}.txt", f"Note {i}.\n".encode()) for i in range(3)
    ]
    worker.start()
    for _ in range(3):
        kill_when(worker, deadly, "embedding", min_progress=35)
        worker.start()
    quarantined = wait_for_version(deadly)
    assert (quarantined.status, quarantined.error_code) == ("quarantined", "quarantined")
    for version_id in others:
        assert wait_for_version(version_id).status == "indexed", worker.tail()
    worker.stop()
    assert not quarantined.chunks.exists()
    assert_consistent([deadly, *others])


@pytest.mark.parametrize("step", ["cleared", "written"])
def test_a_worker_killed_inside_the_index_write_of_a_new_version_recovers_cleanly(
    worker: WorkerProcess, finance_collection: Collection, tmp_path: Path, step: str
) -> None:
    """The index write takes milliseconds, so the worker is parked at the step (the wrapper
    module above) and killed there. Version 1 of the manual is live throughout; version 2 is
    killed half-written, and after the restart it replaces version 1 exactly once."""
    first = upload(finance_collection, "pumps.md", long_document("Pump", 12))
    other = upload(finance_collection, "hours.txt", b"The plant closes at six on Fridays.\n")
    worker.start()
    assert wait_for_version(first).status == "indexed", worker.tail()
    assert wait_for_version(other).status == "indexed", worker.tail()
    worker.stop()

    second = upload(finance_collection, "pumps.md", long_document("Pump", 30))
    marker = tmp_path / "paused"
    worker.start(
        pause={
            "KB_TEST_PAUSE_AT": step,
            "KB_TEST_PAUSE_VERSION": str(second),
            "KB_TEST_PAUSE_MARKER": str(marker),
        }
    )
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert time.monotonic() < deadline, f"never reached {step}:\n{worker.tail()}"
        time.sleep(0.05)
    # Parked in the write: version 2 is still being worked on, version 1 still serves.
    paused = DocumentVersion.objects.get(pk=second)
    assert (paused.status, paused.index_state, paused.progress) == ("embedding", "hidden", 90)
    assert DocumentVersion.objects.get(pk=first).index_state == "live"
    worker.kill()

    worker.start()
    assert wait_for_version(second).status == "indexed", worker.tail()
    assert wait_for_version(first).status == "superseded"
    # The purge of version 1 runs after the flip (KB_PURGE_GRACE_SECONDS=0 here).
    deadline = time.monotonic() + 60
    while DocumentVersion.objects.get(pk=first).index_state != "none":
        assert time.monotonic() < deadline, f"version 1 never purged:\n{worker.tail()}"
        time.sleep(0.25)
    worker.stop()

    assert DocumentVersion.objects.get(pk=second).attempts == 2
    assert_consistent([first, second, other])
    # Only the new version is in the index, each of its chunks once.
    second_chunks = Chunk.objects.filter(version_id=second).count()
    assert second_chunks > Chunk.objects.filter(version_id=first).count() == 0
    assert index_count(version_id=second) == second_chunks
    assert index_count(version_id=first) == 0
