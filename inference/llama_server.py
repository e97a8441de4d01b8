"""llama.cpp's OpenAI-compatible server as a supervised child process.

The embedded default serves a local GGUF file through the same HTTP interface as vLLM, so
the product has one way of talking to a model (`OpenAICompatibleLLM`). Running the model in
its own process also means a crash inside llama.cpp (a segfault in native code, the kernel's
OOM killer) ends that process only: the portal keeps serving, answers show the passages with
a notice meanwhile, and the supervisor starts the server again.

`LlamaServerSupervisor` starts `python -m llama_cpp.server` on 127.0.0.1, watches it from a
daemon thread and restarts it whenever it exits, with a growing pause between attempts.
`SupervisedChatModel` is the chat model the product uses: it asks the supervisor first and
raises `LLMUnavailable` at once, with the reason, while the server is not ready.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import enum
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from inference.llm import Completion, Delta, LLMUnavailable, ModelRestarting, OpenAICompatibleLLM

logger = logging.getLogger(__name__)

FIRST_RESTART_PAUSE_SECONDS = 1.0
LONGEST_RESTART_PAUSE_SECONDS = 30.0
# A server that stayed up this long is considered healthy again: its next crash is restarted
# after the first, short pause rather than the grown one.
STABLE_AFTER_SECONDS = 60.0
# Loading a large GGUF from a slow disk takes a while; a server not answering by then is
# stuck, and is killed and started again.
STARTUP_TIMEOUT_SECONDS = 300.0
LOG_TAIL_LINES = 20

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        # The server binds with SO_REUSEADDR too, so a port whose old connections linger in
        # TIME_WAIT after a crash counts as free, as it is for the server.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def llama_server_command(
    gguf_path: Path,
    port: int,
    model_alias: str,
    context_tokens: int = 4096,
    extra_args: tuple[str, ...] = (),
) -> list[str]:
    """The command line of llama.cpp's OpenAI-compatible server on loopback: the one place
    it is written (the tests' stand-in for vLLM starts the same command)."""
    return [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(gguf_path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(context_tokens),
        "--model_alias",
        model_alias,
        *extra_args,
    ]


def default_model_alias(gguf_path: Path) -> str:
    """The name the server serves the model under, which answers record as their model:
    `llama.cpp:` and the file name (as when llama.cpp ran in-process, so the count of answers
    per model goes on). The file name also tells R1 distills apart (`thinks_before_answering`)."""
    return f"llama.cpp:{gguf_path.name}"


def describe_exit(returncode: int) -> str:
    """`exit code 1`, or `signal 11 (SIGSEGV)` for a process a signal ended."""
    if returncode >= 0:
        return f"exit code {returncode}"
    number = -returncode
    try:
        name = signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
    return f"signal {number} ({name})"


def read_log_tail(log_path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with log_path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(log.tell() - 16 * 1024, 0))
            text = log.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class Phase(enum.Enum):
    STARTING = "starting"  # the first start: not ready yet
    READY = "ready"
    RESTARTING = "restarting"  # it was started before and exited (or never came up)
    STOPPED = "stopped"  # stop() was called, or it was never started


@dataclass(frozen=True)
class ServerState:
    phase: Phase
    base_url: str
    log_path: Path
    pid: int | None = None
    # What ended the last run ("signal 11 (SIGSEGV)"), empty before any run ended.
    last_exit: str = ""
    restarts: int = 0

    @property
    def ready(self) -> bool:
        return self.phase is Phase.READY

    def summary(self) -> str:
        """One line for people: the admin pages, readiness, the serve command."""
        if self.phase is Phase.RESTARTING:
            return f"restarting after it stopped ({self.last_exit})"
        if self.phase is Phase.READY and self.restarts:
            plural = "s" if self.restarts > 1 else ""
            return f"ready (restarted {self.restarts} time{plural}, last after {self.last_exit})"
        return str(self.phase.value)

    def unavailable_reason(self) -> str:
        """Why a question cannot be put to the model now, for LLMUnavailable and the log."""
        if self.phase is Phase.STARTING:
            what = "the local model is still starting"
        elif self.phase is Phase.RESTARTING:
            what = f"the local model is restarting after it stopped ({self.last_exit})"
        elif self.phase is Phase.STOPPED:
            what = "the local model server is stopped"
        else:
            return "the local model is ready"
        return f"{what}; answers show passages meanwhile (log: {self.log_path})"


def unavailable(state: ServerState, before: str = "") -> LLMUnavailable:
    """The exception for a server that is not ready: ModelRestarting while it is expected
    back (starting, restarting after an exit), LLMUnavailable once it was stopped."""
    reason = before + state.unavailable_reason()
    if state.phase in (Phase.STARTING, Phase.RESTARTING):
        return ModelRestarting(reason)
    return LLMUnavailable(reason)


_running_supervisors: weakref.WeakSet[LlamaServerSupervisor] = weakref.WeakSet()


@atexit.register
def _stop_running_supervisors() -> None:
    # The server must not outlive the portal: an interpreter that exits normally stops it
    # here; one that is killed leaves it to PR_SET_PDEATHSIG (see _die_with_parent).
    for supervisor in list(_running_supervisors):
        supervisor.stop()


def _parent_death_signal_setter() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGKILL the child when the thread that started it dies,
    which covers a portal killed with SIGKILL (no atexit runs then). Resolved here, in the
    parent, so the child between fork and exec only makes one foreign call."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    kill_signal = ctypes.c_ulong(int(signal.SIGKILL))

    def _die_with_parent() -> None:
        prctl(_PR_SET_PDEATHSIG, kill_signal, 0, 0)

    return _die_with_parent


_DIE_WITH_PARENT = _parent_death_signal_setter()


class LlamaServerSupervisor:
    """Runs llama.cpp's server for one GGUF file and keeps it running until `stop()`.

    The same port is kept across restarts, so clients need not change; only when another
    process has taken it meanwhile does the server move to a new one (`base_url` follows).
    """

    def __init__(
        self,
        gguf_path: Path,
        log_path: Path,
        *,
        model_alias: str | None = None,
        context_tokens: int = 4096,
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
        first_restart_pause: float = FIRST_RESTART_PAUSE_SECONDS,
        longest_restart_pause: float = LONGEST_RESTART_PAUSE_SECONDS,
        startup_timeout: float = STARTUP_TIMEOUT_SECONDS,
    ) -> None:
        self.gguf_path = gguf_path
        self.log_path = log_path
        self.model_alias = model_alias or default_model_alias(gguf_path)
        self.context_tokens = context_tokens
        self.extra_args = extra_args
        self.first_restart_pause = first_restart_pause
        self.longest_restart_pause = longest_restart_pause
        self.startup_timeout = startup_timeout
        self._port = port or free_loopback_port()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._phase = Phase.STOPPED
        self._last_exit = ""
        self._restarts = 0
        self._watcher: threading.Thread | None = None

    # -- what clients read -------------------------------------------------------------

    @property
    def base_url(self) -> str:
        with self._lock:
            return self._base_url_locked()

    def _base_url_locked(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    def state(self) -> ServerState:
        with self._lock:
            return self._state_locked()

    def _state_locked(self) -> ServerState:
        return ServerState(
            phase=self._phase,
            base_url=self._base_url_locked(),
            log_path=self.log_path,
            pid=self._process.pid if self._process is not None else None,
            last_exit=self._last_exit,
            restarts=self._restarts,
        )

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return read_log_tail(self.log_path, lines)

    def wait_until_ready(self, timeout: float) -> ServerState:
        """The state once the server is ready, or when `timeout` ran out or it was stopped."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._phase not in (Phase.READY, Phase.STOPPED):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            return self._state_locked()

    # -- starting and stopping ---------------------------------------------------------

    def start(self) -> LlamaServerSupervisor:
        """Start the server in the background; returns at once (see `wait_until_ready`)."""
        with self._lock:
            if self._watcher is not None:
                return self
            self._phase = Phase.STARTING
            # Only the watcher thread starts the child, because PR_SET_PDEATHSIG fires when
            # the thread that forked it ends: a request thread that happened to start the
            # model would take it down when it finished. A stopped supervisor stays stopped.
            self._watcher = threading.Thread(
                target=self._supervise, name="llama-server-supervisor", daemon=True
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        _running_supervisors.add(self)
        self._watcher.start()
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after `timeout`) and do not restart it."""
        self._stopping.set()
        with self._changed:
            process = self._process
            self._phase = Phase.STOPPED
            self._changed.notify_all()
        if process is not None:
            _end_process_group(process, timeout)
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout)
        _running_supervisors.discard(self)

    # -- the watcher thread ------------------------------------------------------------

    def _set_phase(self, phase: Phase, last_exit: str | None = None) -> None:
        with self._changed:
            if self._stopping.is_set():
                return  # stop() has the last word
            self._phase = phase
            if last_exit is not None:
                self._last_exit = last_exit
            self._changed.notify_all()

    def _supervise(self) -> None:
        pause = self.first_restart_pause
        while not self._stopping.is_set():
            try:
                process = self._spawn()
            except OSError as exc:
                logger.error("could not start the llama.cpp server: %s", exc)
                self._set_phase(Phase.RESTARTING, f"could not start: {exc}")
            else:
                ready_at = self._wait_until_serving(process)
                if ready_at is not None:
                    self._set_phase(Phase.READY)
                    logger.info("llama.cpp server ready at %s", self.base_url)
                    process.wait()
                    if time.monotonic() - ready_at >= STABLE_AFTER_SECONDS:
                        pause = self.first_restart_pause
                if self._stopping.is_set():
                    return
                ended = describe_exit(process.wait())
                with self._lock:
                    self._restarts += 1
                self._set_phase(Phase.RESTARTING, ended)
                logger.error(
                    "the llama.cpp server stopped (%s); starting it again in %.0f s. "
                    "Last lines of %s:\n%s",
                    ended,
                    pause,
                    self.log_path,
                    self.log_tail(),
                )
            if self._stopping.wait(pause):
                return
            pause = min(pause * 2, self.longest_restart_pause)

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self._lock:
            if not port_is_free(self._port):
                # Someone else took the port while the server was down: move, and let
                # clients follow base_url.
                self._port = free_loopback_port()
            port = self._port
        command = llama_server_command(
            self.gguf_path, port, self.model_alias, self.context_tokens, self.extra_args
        )
        with self.log_path.open("ab") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command)}\n".encode())
            log.flush()
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, fixed argv
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # The model is loaded from the file named; nothing is fetched.
                env={**os.environ, "HF_HUB_OFFLINE": "1"},
                # Its own process group: a Ctrl+C in the portal's terminal reaches the portal,
                # which stops the server itself, and stop() can end anything the server started.
                start_new_session=True,
                preexec_fn=_DIE_WITH_PARENT,
            )
        with self._lock:
            self._process = process
        if self._stopping.is_set():  # stop() ran while this one was being started
            _end_process_group(process, 5.0)
        return process

    def _wait_until_serving(self, process: subprocess.Popen[bytes]) -> float | None:
        """The monotonic time the server first answered /v1/models, or None if it exited,
        was stopped or did not answer within the start-up timeout (it is killed then)."""
        deadline = time.monotonic() + self.startup_timeout
        models_url = f"{self.base_url}/models"
        while not self._stopping.is_set():
            if process.poll() is not None:
                return None
            try:
                with urllib.request.urlopen(models_url, timeout=2) as response:  # noqa: S310 (loopback http URL built here)
                    response.read()
                return time.monotonic()
            except OSError:
                pass
            if time.monotonic() > deadline:
                logger.error(
                    "the llama.cpp server did not answer within %.0f s; killing it",
                    self.startup_timeout,
                )
                _end_process_group(process, 0)
                return None
            self._stopping.wait(0.25)
        return None


def _end_process_group(process: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the server's process group; SIGKILL it if it is still there after `grace`
    seconds (at once if `grace` is 0)."""
    if process.poll() is not None:
        return
    if grace > 0:
        _signal_group(process, signal.SIGTERM)
        try:
            process.wait(grace)
            return
        except subprocess.TimeoutExpired:
            pass
    _signal_group(process, signal.SIGKILL)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        logger.error("the llama.cpp server (pid %s) survived SIGKILL for 10 s", process.pid)


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)  # its own group: see start_new_session in _spawn


class SupervisedChatModel:
    """The product's chat model for a supervised llama.cpp server: an `OpenAICompatibleLLM`
    for the server's current URL, consulted only while the server is ready. Otherwise each
    call raises `LLMUnavailable` with the reason at once, instead of waiting out retries and
    timeouts against a port nothing listens on. `client_for(base_url)` builds the client, so
    the caller decides how clients are built and kept."""

    def __init__(
        self,
        supervisor: LlamaServerSupervisor,
        client_for: Callable[[str], OpenAICompatibleLLM],
        first_start_wait: float = 60.0,
    ) -> None:
        self.supervisor = supervisor
        self.client_for = client_for
        # A question asked just after the portal started waits this long for the model's
        # first start (seconds for a small GGUF); a restart after a crash is not waited for.
        self.first_start_wait = first_start_wait

    @property
    def model_id(self) -> str:
        # Not the URL: the port is the server's own business, and may change after a restart.
        return self.supervisor.model_alias

    def _ready_client(self) -> OpenAICompatibleLLM:
        state = self.supervisor.state()
        if state.phase is Phase.STARTING and self.first_start_wait > 0:
            state = self.supervisor.wait_until_ready(self.first_start_wait)
        if not state.ready:
            raise unavailable(state)
        return self.client_for(state.base_url)

    def _explained(self, exc: LLMUnavailable) -> LLMUnavailable:
        """A failed call says why if the server stopped meanwhile (the supervisor may only
        notice a moment later, so it is asked again after a short wait)."""
        for _ in range(4):
            state = self.supervisor.state()
            if not state.ready:
                return unavailable(state, f"{exc}; ")
            time.sleep(0.25)
        return exc

    def complete(self, messages: list[dict[str, str]]) -> Completion:
        client = self._ready_client()
        try:
            return client.complete(messages)
        except LLMUnavailable as exc:
            raise self._explained(exc) from exc

    def stream(self, messages: list[dict[str, str]]) -> Iterator[Delta | Completion]:
        client = self._ready_client()
        try:
            for item in client.stream(messages):
                if isinstance(item, Completion) and not item.prompt_tokens:
                    item = replace(item, prompt_tokens=self._count_prompt_tokens(client, messages))
                yield item
        except LLMUnavailable as exc:
            raise self._explained(exc) from exc

    def _count_prompt_tokens(
        self, client: OpenAICompatibleLLM, messages: list[dict[str, str]]
    ) -> int:
        """llama.cpp's server reports no token usage in a stream (vLLM does), and quotas count
        prompt tokens: ask its tokenizer for the messages' text (the few tokens of the chat
        template aside). 0 when it cannot say."""
        root = client.base_url.removesuffix("/").removesuffix("/v1")
        request = urllib.request.Request(  # noqa: S310 (the supervised server's loopback URL)
            f"{root}/extras/tokenize/count",
            data=json.dumps({"input": "\n".join(m["content"] for m in messages)}).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (same)
                return int(json.load(response)["count"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0
