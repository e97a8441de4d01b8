"""The isolated parser process: limits enforced by the kernel, a fresh child after each death."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.errors import ParseError, ParseMemoryLimit, ParserCrashed, ParseTimeout
from ingest.parsing import ParsedDocument, ParseOptions
from ingest.sandbox import IsolatedRunner, SandboxLimits

TARGET = "tests.ingest.sandbox_targets:behave"


@pytest.fixture
def runner() -> Iterator[IsolatedRunner]:
    sandbox = IsolatedRunner(SandboxLimits(memory_mb=1024, timeout_seconds=3), target=TARGET)
    yield sandbox
    sandbox.close()


def pid(runner: IsolatedRunner) -> int:
    return int(runner.run({"action": "echo"}, "echo")["pid"])


def test_one_child_serves_many_requests(runner: IsolatedRunner) -> None:
    assert pid(runner) == pid(runner)
    assert runner.run({"action": "print"}, "noisy") == "clean"


def test_a_known_failure_comes_back_as_its_error(runner: IsolatedRunner) -> None:
    before = pid(runner)
    with pytest.raises(ParseError, match="broken in a known way"):
        runner.run({"action": "fail"}, "'x.pdf'")
    assert pid(runner) == before  # an ordinary failure does not cost a restart


def test_a_hang_is_killed_at_the_deadline_and_the_next_request_works(
    runner: IsolatedRunner,
) -> None:
    before = pid(runner)
    beats: list[int] = []
    with pytest.raises(ParseTimeout, match=r"'slow\.pdf' took longer than 3 s"):
        runner.run({"action": "sleep", "seconds": 60}, "'slow.pdf'", lambda: beats.append(1), 0.5)
    assert len(beats) >= 3  # the worker could show it was alive while waiting
    assert pid(runner) != before


def test_memory_beyond_the_limit_fails_alone(runner: IsolatedRunner) -> None:
    before = pid(runner)
    with pytest.raises(ParseMemoryLimit, match="memory"):
        runner.run({"action": "allocate", "megabytes": 4096}, "'bomb.xlsx'")
    assert runner.run({"action": "allocate", "megabytes": 16}, "small") == 16 * 1024 * 1024
    assert pid(runner) != before  # restarted after the MemoryError


def test_a_crash_is_reported_and_the_child_replaced(runner: IsolatedRunner) -> None:
    with pytest.raises(ParserCrashed, match=r"killed by SIGSEGV while reading 'evil\.pdf'"):
        runner.run({"action": "segfault"}, "'evil.pdf'")
    assert runner.run({"action": "echo", "value": 7}, "after")["value"] == 7


def test_a_child_whose_worker_died_before_it_started_exits_at_once() -> None:
    """A worker SIGKILLed while its new parser child is still starting up: by the time the
    child's watchdog looks, the child belongs to another process. Here the named worker is a
    process that has already exited; the child must exit without waiting for its input to end
    (stdin stays open), instead of serving whoever adopted it."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    child = subprocess.Popen(
        [sys.executable, "-m", "ingest.sandbox", TARGET],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "KB_SANDBOX_PARENT_PID": str(gone.pid)},
    )
    try:
        assert child.wait(timeout=30) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        assert child.stdin is not None
        child.stdin.close()


def test_the_real_parser_runs_in_the_child(tmp_path: Path) -> None:
    sandbox = IsolatedRunner(SandboxLimits(timeout_seconds=60))
    try:
        path = tmp_path / "x"
        path.write_text("# Hotels\n\nThe limit is 180 EUR.\n")
        result = sandbox.run(
            {"path": str(path), "filename": "p.md", "options": ParseOptions().to_json()}, "p.md"
        )
        document = ParsedDocument.from_json(result)
        assert document.elements[-1].section == ("Hotels",)
    finally:
        sandbox.close()
