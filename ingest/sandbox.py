"""Run parsing in a child process with a memory limit and a deadline (docs/security.md case 9).

Parsers are large native code (pdfium, libxml2, Tesseract) fed with hostile input. The child
is long-lived, because importing unstructured costs seconds, and it is killed and restarted
whenever a file takes it down or runs past its deadline, the way Tika server is run. The
parent never unpickles anything from the child: requests and answers are JSON lines, so a
child compromised by a file cannot attack the worker through the protocol.

The child runs one fixed target function chosen by the parent's code (`module:function`),
never a name taken from input. Tests point it at small targets that allocate, hang or crash.
An optional prelude (also `module:function`, also the parent's code) runs first, before the
target's module is imported: the product installs its offline guard there, which allows the
child no network at all (kb/ops/offline.py).

The child must not outlive the worker that started it (a SIGKILLed worker cannot clean up):
a watchdog thread in the child exits as soon as its parent process is gone. (PR_SET_PDEATHSIG
would not do: Linux sends it when the *thread* that started the child exits, and a worker's
threads come and go.) The parent names itself in the child's environment: a worker killed
while its new child is still starting up has already handed the child to another process by
the time the watchdog looks, and the child must see that as its parent being gone.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ingest.errors import (
    IngestError,
    ParseMemoryLimit,
    ParserCrashed,
    ParseTimeout,
    error_from_code,
)

logger = logging.getLogger(__name__)

PARSE_TARGET = "ingest.parsing:parse_request"
_READY = "ready"
# The environment variable in which the worker names its own pid for the child's watchdog.
_PARENT_VARIABLE = "KB_SANDBOX_PARENT_PID"


@dataclass(frozen=True)
class SandboxLimits:
    memory_mb: int = 4096
    timeout_seconds: float = 300.0
    startup_seconds: float = 180.0


class IsolatedRunner:
    """Sends JSON requests to one child process running `target`; one request at a time."""

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        target: str = PARSE_TARGET,
        prelude: str | None = None,
    ) -> None:
        self.limits = limits or SandboxLimits()
        self.target = target
        self.prelude = prelude
        self._process: subprocess.Popen[bytes] | None = None
        self._owner = os.getpid()
        self._buffer = b""
        self._lock = threading.Lock()

    def _current(self) -> subprocess.Popen[bytes] | None:
        """The child, if it is alive and ours (a fork, such as a Celery prefork pool process,
        inherits the handle of its parent's child, whose pipes it must not share)."""
        if self._owner != os.getpid():
            self._owner, self._process, self._buffer = os.getpid(), None, b""
        if self._process is not None and self._process.poll() is not None:
            self._process = None
        return self._process

    # --- lifecycle ---------------------------------------------------------------------

    def _start(self) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "KB_SANDBOX_MEMORY_MB": str(self.limits.memory_mb),
            _PARENT_VARIABLE: str(os.getpid()),
        }
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, fixed argv
            [sys.executable, "-m", "ingest.sandbox", self.target, *filter(None, [self.prelude])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
        )
        self._process, self._buffer = process, b""
        line = self._read_line(process, time.monotonic() + self.limits.startup_seconds, None, 0)
        if line is None or json.loads(line) != _READY:
            self._kill()
            raise ParserCrashed(f"the parser process did not start (answered {line!r})")
        logger.info("parser process %s started (limit %d MB)", process.pid, self.limits.memory_mb)
        return process

    def warm_up(self) -> None:
        with self._lock:
            if self._current() is None:
                self._start()

    def _kill(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
        if process is not None:
            process.wait()

    def close(self) -> None:
        with self._lock:
            process, self._process = self._process, None
            if process is None:
                return
            if process.stdin:
                process.stdin.close()  # the child exits at end of input
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    # --- requests ----------------------------------------------------------------------

    def _read_line(
        self,
        process: subprocess.Popen[bytes],
        deadline: float,
        on_wait: Callable[[], None] | None,
        wait_every: float,
    ) -> str | None:
        """One line from the child before `deadline`; None if it exited first.

        `on_wait` is called every `wait_every` seconds while waiting, so the worker can show
        it is alive during a long OCR job.
        """
        assert process.stdout is not None
        fd = process.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            next_wait = time.monotonic() + wait_every
            while b"\n" not in self._buffer:
                now = time.monotonic()
                if now >= deadline:
                    raise TimeoutError
                if on_wait is not None and now >= next_wait:
                    on_wait()
                    next_wait = now + wait_every
                timeout = min(deadline, next_wait) - now if on_wait else deadline - now
                if not selector.select(max(timeout, 0.0)):
                    continue
                block = os.read(fd, 1 << 20)
                if not block:
                    return None
                self._buffer += block
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode("utf-8")

    def run(
        self,
        request: dict[str, Any],
        description: str,
        on_wait: Callable[[], None] | None = None,
        wait_every: float = 10.0,
    ) -> Any:
        """Send `request`, return the target's JSON result, or raise the IngestError it names.

        `description` names the input in error messages (the file's name).
        """
        with self._lock:
            process = self._current() or self._start()
            assert process.stdin is not None
            try:
                process.stdin.write(json.dumps(request).encode("utf-8") + b"\n")
                process.stdin.flush()
                line = self._read_line(
                    process, time.monotonic() + self.limits.timeout_seconds, on_wait, wait_every
                )
            except TimeoutError:
                self._kill()
                raise ParseTimeout(
                    f"{description} took longer than {self.limits.timeout_seconds:.0f} s to "
                    "parse and was stopped"
                ) from None
            except BrokenPipeError:
                line = None
            if line is None:
                returncode = process.wait()
                self._process = None
                raise self._death_error(returncode, description)
            answer = json.loads(line)
            if answer.get("ok"):
                return answer["result"]
            error = error_from_code(str(answer["code"]), str(answer["message"]))
            if answer.get("restart"):
                self._kill()  # after a MemoryError the child's heap is not to be trusted
            raise error

    def _death_error(self, returncode: int, description: str) -> IngestError:
        if returncode < 0:
            try:
                how = f"was killed by {signal.Signals(-returncode).name}"
            except ValueError:
                how = f"was killed by signal {-returncode}"
        else:
            how = f"exited with status {returncode}"
        return ParserCrashed(
            f"the parser process {how} while reading {description}: the file is malformed "
            f"or needs more than the {self.limits.memory_mb} MB memory limit"
        )


# --- the child -------------------------------------------------------------------------


def _limit_memory() -> None:
    import resource

    limit_mb = int(os.environ.get("KB_SANDBOX_MEMORY_MB", "0"))
    if limit_mb > 0:
        limit = limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _parent_pid() -> int:
    """The worker that started this child: the one it named, else the current parent."""
    named = os.environ.get(_PARENT_VARIABLE, "")
    return int(named) if named.isdigit() else os.getppid()


def _exit_with_parent(parent: int) -> None:
    """Exit the moment the worker that started us is gone, even mid-parse (or before we got
    here: then the current parent is already another process, and we exit at once)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _answer(out: Any, payload: dict[str, Any]) -> None:
    out.write(json.dumps(payload, ensure_ascii=False) + "\n")
    out.flush()


def _call(name: str) -> Any:
    module_name, _, function_name = name.partition(":")
    return getattr(importlib.import_module(module_name), function_name)()


def child_main(target: str, prelude: str | None = None) -> None:
    _exit_with_parent(_parent_pid())
    if prelude:
        _call(prelude)
    _limit_memory()
    # Parsing is background work: the web threads and the embedding model come first, and a
    # lower priority lets the parser fill the gaps the model's threads leave on each core.
    os.nice(10)
    # Keep the protocol channel private: libraries that print to stdout write to stderr.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    module_name, _, function_name = target.partition(":")
    function: Callable[[dict[str, Any]], Any] = getattr(
        importlib.import_module(module_name), function_name
    )
    warm = getattr(importlib.import_module(module_name), "warm_up", None)
    if callable(warm):
        warm()
    out.write(json.dumps(_READY) + "\n")
    out.flush()
    for line in sys.stdin.buffer:
        request = json.loads(line)
        try:
            result = function(request)
        except IngestError as exc:
            _answer(out, {"ok": False, "code": exc.code, "message": str(exc)})
        except MemoryError:
            _answer(
                out,
                {
                    "ok": False,
                    "code": ParseMemoryLimit.code,
                    "message": f"{request.get('filename', 'the file')!r} needs more memory than "
                    f"the parser's limit of {os.environ.get('KB_SANDBOX_MEMORY_MB')} MB",
                    "restart": True,
                },
            )
        except RecursionError:
            _answer(
                out,
                {
                    "ok": False,
                    "code": "parse_error",
                    "message": f"{request.get('filename', 'the file')!r} is nested too deeply "
                    "to parse (circular or recursive structure)",
                },
            )
        except Exception as exc:
            _answer(
                out,
                {
                    "ok": False,
                    "code": "parse_error",
                    "message": f"{request.get('filename', 'the file')!r} could not be parsed: "
                    f"{type(exc).__name__}: {exc}",
                },
            )
        else:
            _answer(out, {"ok": True, "result": result})


if __name__ == "__main__":
    child_main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
