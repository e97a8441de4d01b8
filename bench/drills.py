"""Outage drills (docs/security.md case 12): stop Redis, the LLM server and the index under load.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/kb .venv/bin/python bench/drills.py \\
        [--users 4] [--baseline 10] [--outage 30] [--recovery-limit 240]

Everything is real and on this machine: PostgreSQL (a database `kb_drills` of its own), a
redis-server process of the drill's own (broker and rate-limit cache, as in compose), the
app served by `manage.py serve` (waitress, the embedded Celery worker, Qdrant Edge), and
llama.cpp's OpenAI-compatible server (the tiny Gemma GGUF) as the model. A few simulated
users (threads) ask through the portal's stream and the REST API (JSON and streamed in turn),
search, and upload documents through the REST API, while /readyz is polled. Each drill: a
baseline, the outage, the component back, and load until every accepted upload is indexed.

1. llm: the llama.cpp server is killed: answers must turn extractive with the notice, /readyz
   "degraded", and generated again once a new server answers on the same port.
2. redis: the redis-server is killed (no persistence: its queue dies with it). Uploads must be
   accepted and kept (queued in the database) or refused with a clear 503, never lost, asks
   and searches must keep answering, and after Redis is back every accepted upload must be
   indexed (the recovery sweep resends what the broker lost).
3. index: no Qdrant server can run here (no PyPI package ships one; Qdrant Edge is in-process
   and cannot be stopped apart from the web process). What is drilled instead is the
   production topology with its index unreachable: uvicorn (kb.asgi) and a separate
   `celery worker`, both with QDRANT_URL pointing at a port where nothing answers (a Qdrant
   server that is down). Searches and asks must fail with a clear message (portal: an error
   event; API: a problem-details 503), /readyz must say the index is down, uploads must be
   accepted and queued. The index then comes back as the Edge index the installation served
   before (the same database and queue; the web process restarted on it), and every upload
   accepted during the outage must be indexed. This shows nothing accepted is lost across an
   index outage; it does not show a Qdrant server process coming back by itself.

After the drills the server is stopped and the database is compared with the index: every
document indexed, chunk count in the database equal to the points in the index per version.
Results: bench/results/drills.json. The e2e test runs the same code with shorter phases.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: find bench/
from bench.common import ROOT, machine, write_result
from inference.llama_server import llama_server_command

QUESTIONS = [
    "Who approves invoices above 50,000 EUR?",
    "How long are receipts kept?",
    "What is the travel expense policy?",
]
PASSWORD = "alice-demo-2026"  # noqa: S105 (seed_demo's demo curator of Finance)
REQUEST_TIMEOUT = 60.0  # a request still unanswered after this counts as a timeout
PREFIX = "drills"  # uploaded documents' paths start with this


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.5)


def _answers(url: str) -> bool:
    try:
        requests.get(url, timeout=2)
        return True
    except requests.RequestException:
        return False


# --- the processes ---------------------------------------------------------------------------


class Process:
    """A child process with its output in a log file; killed (SIGKILL) to simulate a crash."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.command, self.env, self.log = name, command, env, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: S603 (our own commands)
                self.command, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def stop(self, timeout: float = 60) -> None:
        """Gracefully (SIGINT, as Ctrl+C), then by force."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


@dataclass
class Stack:
    work: Path
    env: dict[str, str]
    redis_port: int
    llm_port: int
    web_port: int
    gguf: Path
    redis: Process | None = None
    llm: Process | None = None
    web: list[Process] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start_redis(self) -> None:
        self.redis = Process(
            "redis",
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"],
            self.env, self.work / "redis.log",
        ).start()  # fmt: skip
        _wait(lambda: _redis_pings(self.redis_port), 30, "redis-server")

    def start_llm(self) -> None:
        self.llm = Process(
            "llm",
            llama_server_command(self.gguf, self.llm_port, "gemma-3-270m"),
            {**self.env, "HF_HUB_OFFLINE": "1"}, self.work / "llm.log",
        ).start()  # fmt: skip
        _wait(lambda: _answers(f"http://127.0.0.1:{self.llm_port}/v1/models"), 120, "llama.cpp")

    def start_serve(self) -> None:
        """The embedded production-like run: waitress, the worker in-process, Qdrant Edge."""
        env = {**self.env, "KB_EMBEDDED_WORKER": "true"}
        command = [sys.executable, "manage.py", "serve", "--port", str(self.web_port)]
        self.web = [Process("serve", command, env, self.work / "serve.log").start()]
        self._wait_web()

    def start_split(self, qdrant_url: str) -> None:
        """Compose's topology: uvicorn web and a separate Celery worker, Qdrant server adapter."""
        env = {**self.env, "KB_EMBEDDED_WORKER": "false", "QDRANT_URL": qdrant_url}
        web = [sys.executable, "-m", "uvicorn", "kb.asgi:application", "--host", "127.0.0.1",
               "--port", str(self.web_port), "--lifespan", "off", "--no-access-log"]  # fmt: skip
        worker = [sys.executable, "-m", "celery", "-A", "kb", "worker", "-n", "drills@localhost",
                  "--pool", "threads", "--concurrency", "4", "--loglevel", "INFO"]  # fmt: skip
        self.web = [
            Process("uvicorn", web, env, self.work / "uvicorn.log").start(),
            Process("worker", worker, env, self.work / "worker.log").start(),
        ]
        self._wait_web()

    def _wait_web(self) -> None:
        def up() -> bool:
            for process in self.web:
                if not process.alive():
                    raise RuntimeError(f"{process.name} exited:\n{process.tail()}")
            return _answers(f"{self.base}/healthz")

        _wait(up, 240, "the web server")

    def stop_web(self) -> None:
        for process in self.web:
            process.stop()
        self.web = []

    def stop_all(self) -> None:
        self.stop_web()
        for process in (self.llm, self.redis):
            if process is not None:
                process.kill()


def _redis_pings(port: int) -> bool:
    import redis

    try:
        return bool(redis.Redis(port=port, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def manage_python(env: dict[str, str], *args: str) -> Any:
    """Run one of this file's internal steps inside Django, with the drill's environment."""
    result = subprocess.run(  # noqa: S603
        [sys.executable, str(Path(__file__).resolve()), "--internal", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"internal step {args} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- the simulated users ---------------------------------------------------------------------


@dataclass
class Tally:
    """What one phase of one drill saw."""

    requests: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    modes: Counter[str] = field(default_factory=Counter)
    readyz: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def add(self, outcome: str, example: str = "") -> None:
        self.requests += 1
        self.outcomes[outcome] += 1
        if example and outcome not in self.examples:
            self.examples[outcome] = example[:300]

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "outcomes": dict(self.outcomes),
            "answer_modes": dict(self.modes),
            "readyz": dict(self.readyz),
            "examples": self.examples,
        }


class Load:
    """Threads asking, searching and uploading until stopped; outcomes go to the current phase.

    An outcome is `ok`, `refused_clearly` (a 503 with a message a person can act on: the
    API's problem details, the portal's error event, an upload's 503), or an error: `5xx`
    (any other server error), `timeout`, `connection` or `unexpected` (anything else).
    """

    def __init__(self, stack: Stack, token: str, collection: int, users: int) -> None:
        self.stack, self.token, self.collection, self.users = stack, token, collection, users
        self.phase = Tally()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.accepted: dict[str, list[int]] = {}  # drill -> documents accepted
        self.drill = ""
        self.threads: list[threading.Thread] = []
        self.asks = itertools.count()  # the API's asks alternate JSON and streamed

    def record(self, outcome: str, example: str = "", mode: str = "") -> None:
        with self.lock:
            self.phase.add(outcome, example)
            if mode:
                self.phase.modes[mode] += 1

    def start_phase(self) -> Tally:
        with self.lock:
            self.phase = Tally()
            return self.phase

    def start(self) -> None:
        kinds = [self._portal_stream, self._api_ask, self._api_search, self._uploader]
        for i in range(self.users):
            kind = kinds[i % len(kinds)]
            self.threads.append(threading.Thread(target=self._loop, args=(kind,), daemon=True))
        self.threads.append(threading.Thread(target=self._loop, args=(self._readyz,), daemon=True))
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=REQUEST_TIMEOUT + 10)

    def _loop(self, kind: Callable[[requests.Session], float]) -> None:
        session = requests.Session()
        while not self.stopping.is_set():
            try:
                pause = kind(session)
            except requests.Timeout as exc:
                self.record("timeout", repr(exc))
                pause = 1.0
            except requests.ConnectionError as exc:
                self.record("connection", repr(exc))
                pause = 1.0
            except Exception as exc:  # a drill must report, not die
                self.record("unexpected", repr(exc))
                pause = 1.0
            self.stopping.wait(pause)

    def _api(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def _classify(self, response: requests.Response) -> str | None:
        """None when the response is a success for the caller to look into."""
        if response.status_code == 503:
            is_problem = response.headers.get("Content-Type", "").startswith(
                "application/problem+json"
            )
            if is_problem and response.json().get("detail"):
                return "refused_clearly"
            if "Traceback" not in response.text and len(response.text) < 5000:
                return "refused_clearly"
            return "5xx"
        if response.status_code >= 500:
            return "5xx"
        if response.status_code >= 400:
            return "unexpected"
        return None

    def _portal_stream(self, session: requests.Session) -> float:
        if "sessionid" not in session.cookies:
            session.get(f"{self.stack.base}/login/", timeout=REQUEST_TIMEOUT)
            session.post(
                f"{self.stack.base}/login/",
                data={"username": "alice", "password": PASSWORD,
                      "csrfmiddlewaretoken": session.cookies.get("csrftoken", "")},
                headers={"Referer": f"{self.stack.base}/login/"}, timeout=REQUEST_TIMEOUT,
            )  # fmt: skip
        question = QUESTIONS[int(time.monotonic()) % len(QUESTIONS)]
        response = session.post(
            f"{self.stack.base}/ask/stream/",
            data={"question": question, "csrfmiddlewaretoken": session.cookies.get("csrftoken")},
            headers={"Referer": f"{self.stack.base}/"}, timeout=REQUEST_TIMEOUT,
        )  # fmt: skip
        bad = self._classify(response)
        if bad:
            self.record(bad, response.text)
            return 1.0
        events = dict(re.findall(r"event: (\w+)\ndata: (.*)\n", response.text))
        if "done" in events:
            done = json.loads(events["done"])
            self.record("ok", mode=f"portal_stream:{done['mode']}")
        elif "error" in events:
            message = json.loads(events["error"]).get("message", "")
            # The error event is the stream's way to refuse; it must say something.
            self.record("refused_clearly" if message else "unexpected", message)
        else:
            self.record("unexpected", response.text)
        return 0.5

    def _api_ask(self, session: requests.Session) -> float:
        """The API's ask, JSON and streamed (server-sent events) in turn."""
        question = QUESTIONS[int(time.monotonic()) % len(QUESTIONS)]
        stream = next(self.asks) % 2 == 1
        response = session.post(
            f"{self.stack.base}/api/v1/ask", json={"question": question, "stream": stream},
            headers=self._api(), timeout=REQUEST_TIMEOUT,
        )  # fmt: skip
        bad = self._classify(response)
        if bad:
            self.record(bad, response.text)
            return 1.0
        if not stream:
            self.record("ok", mode=f"api_json:{response.json()['mode']}")
            return 0.5
        events = dict(re.findall(r"event: (\w+)\ndata: (.*)\n", response.text))
        if "done" in events:
            self.record("ok", mode=f"api_stream:{json.loads(events['done'])['mode']}")
        elif "error" in events:
            # A problem details object in the error event: the stream's clear refusal.
            detail = json.loads(events["error"]).get("detail", "")
            self.record("refused_clearly" if detail else "unexpected", detail)
        else:
            self.record("unexpected", response.text)  # a stream that ended silently
        return 0.5

    def _api_search(self, session: requests.Session) -> float:
        response = session.post(
            f"{self.stack.base}/api/v1/search", json={"query": QUESTIONS[0]},
            headers=self._api(), timeout=REQUEST_TIMEOUT,
        )  # fmt: skip
        bad = self._classify(response)
        if bad:
            self.record(bad, response.text)
            return 1.0
        self.record("ok" if response.json()["passages"] else "unexpected", response.text)
        return 0.5

    def refused_search(self) -> bool:
        """One search outside the load (not counted): is the index refusal already served?"""
        try:
            response = requests.post(
                f"{self.stack.base}/api/v1/search", json={"query": QUESTIONS[0]},
                headers=self._api(), timeout=REQUEST_TIMEOUT,
            )  # fmt: skip
        except requests.RequestException:
            return False
        return response.status_code == 503

    def _uploader(self, session: requests.Session) -> float:
        drill = self.drill
        name = f"{PREFIX}/{drill}/{uuid.uuid4().hex[:12]}.md"
        body = (
            f"# Drill note {name}\n\nThis note was uploaded during the {drill} outage drill. "
            f"Its reference code is {uuid.uuid4().hex}. The drill checks it is indexed.\n"
        ).encode()
        response = session.post(
            f"{self.stack.base}/api/v1/collections/{self.collection}/documents",
            files={"file": (name.rsplit("/", 1)[1], body, "text/markdown")},
            data={"path": name}, headers=self._api(), timeout=REQUEST_TIMEOUT,
        )  # fmt: skip
        bad = self._classify(response)
        if bad:
            self.record(bad, response.text)
            return 2.0
        if response.status_code != 201:
            self.record("unexpected", response.text)
            return 2.0
        with self.lock:
            self.accepted.setdefault(drill, []).append(response.json()["results"][0]["document"])
        self.record("ok", mode="upload:accepted")
        return 2.0

    def _readyz(self, session: requests.Session) -> float:
        try:
            response = session.get(f"{self.stack.base}/readyz", timeout=10)
            body = response.json()
            down = sorted(n for n, c in body["checks"].items() if c["status"] != "up")
            state = f"{response.status_code} {body['status']}" + (
                f" ({','.join(down)} down)" if down else ""
            )
        except (requests.RequestException, ValueError, KeyError) as exc:
            state = f"no answer: {type(exc).__name__}"
        with self.lock:
            self.phase.readyz[state] += 1
        return 1.0


# --- the drills ---------------------------------------------------------------------------


def statuses(stack: Stack, documents: list[int]) -> dict[str, int]:
    if not documents:
        return {}
    result: dict[str, int] = manage_python(stack.env, "statuses", *map(str, documents))
    return result


UNSETTLED = {"queued", "parsing", "embedding", "missing"}


def wait_indexed(stack: Stack, documents: list[int], limit: float) -> tuple[bool, dict[str, int]]:
    """Until no document is on its way any more; True if every one was indexed."""
    deadline = time.monotonic() + limit
    while True:
        counts = statuses(stack, documents)
        if not set(counts) & UNSETTLED:
            return set(counts) <= {"indexed"}, counts
        if time.monotonic() > deadline:
            return False, counts
        time.sleep(3)


def phase(load: Load, seconds: float) -> dict[str, Any]:
    tally = load.start_phase()
    time.sleep(seconds)
    return tally.as_json()


def drill_llm(stack: Stack, load: Load, args: argparse.Namespace) -> dict[str, Any]:
    load.drill = "llm"
    baseline = phase(load, args.baseline)
    assert stack.llm is not None
    stack.llm.kill()
    outage = phase(load, args.outage)
    tally = load.start_phase()
    restarted = time.monotonic()
    stack.start_llm()

    def generated_again() -> bool:
        return any(m.endswith(":generated") for m in tally.modes)

    _wait(generated_again, args.recovery_limit, "a generated answer after the LLM came back")
    recovered = round(time.monotonic() - restarted, 1)
    time.sleep(3)
    return {"baseline": baseline, "outage": outage, "recovery": tally.as_json(),
            "time_to_recover_s": recovered,
            "recovered_when": "the first generated answer after the server was started again "
                              "(includes the llama.cpp server's own start)"}  # fmt: skip


def drill_redis(stack: Stack, load: Load, args: argparse.Namespace) -> dict[str, Any]:
    load.drill = "redis"
    baseline = phase(load, args.baseline)
    assert stack.redis is not None
    stack.redis.kill()
    outage = phase(load, args.outage)
    tally = load.start_phase()
    restarted = time.monotonic()
    stack.start_redis()
    accepted = list(load.accepted.get("redis", []))
    done, counts = wait_indexed(stack, accepted, args.recovery_limit)
    recovered = round(time.monotonic() - restarted, 1)
    return {"baseline": baseline, "outage": outage, "recovery": tally.as_json(),
            "time_to_recover_s": recovered if done else None,
            "recovered_when": "every upload accepted before and during the outage was indexed",
            "statuses_at_end": counts}  # fmt: skip


def drill_index(stack: Stack, load: Load, args: argparse.Namespace) -> dict[str, Any]:
    load.drill = "index"
    baseline = phase(load, args.baseline)
    # The index goes away: the web process and the worker now reach for a Qdrant server at a
    # port where nothing listens. Restarting the web process is part of that switch (the
    # embedded index belongs to the process); requests during the switch are counted apart.
    switch = load.start_phase()
    stack.stop_web()
    stack.start_split(f"http://127.0.0.1:{free_port()}")
    # The new web process loads its embedding model on the first search; on a busy 2-core
    # machine that can outlast a short outage phase. The phase starts once a search has been
    # refused, so it measures the outage and not the model's warm-up.
    _wait(load.refused_search, args.recovery_limit, "a warm web process")
    outage = phase(load, args.outage)
    switch_back = load.start_phase()
    restarted = time.monotonic()
    stack.stop_web()
    stack.start_serve()
    back = load.start_phase()
    accepted = list(load.accepted.get("index", []))
    done, counts = wait_indexed(stack, accepted, args.recovery_limit)
    recovered = round(time.monotonic() - restarted, 1)
    return {"baseline": baseline, "switch_to_unreachable_index": switch.as_json(),
            "outage": outage, "switch_back_to_the_index": switch_back.as_json(),
            "recovery": back.as_json(),
            "time_to_recover_s": recovered if done else None,
            "recovered_when": "every upload accepted before and during the outage was indexed "
                              "(includes the web process's restart on the index)",
            "statuses_at_end": counts}  # fmt: skip


def run(args: argparse.Namespace, database_url: str) -> dict[str, Any]:
    from tests.llm_server import gemma_gguf

    work = Path(tempfile.mkdtemp(prefix="kb-drills-"))
    gguf = gemma_gguf(Path(args.models_dir) if args.models_dir else work / "models")
    redis_port, llm_port, web_port = free_port(), free_port(), free_port()
    base, _, _ = database_url.rpartition("/")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_", "CELERY_", "QDRANT_", "LLM_", "KB_", "CACHE_"))
    }
    env.update(
        DATABASE_URL=f"{base}/{args.database}",
        SECRET_KEY="drills-only-secret-key-0123456789abcdefghijklmnop",  # noqa: S106
        KB_DATA_DIR=str(work / "data"),
        CELERY_BROKER_URL=f"redis://127.0.0.1:{redis_port}/0",
        CACHE_URL=f"redis://127.0.0.1:{redis_port}/1",  # compose shares one Redis for both
        LLM_BASE_URL=f"http://127.0.0.1:{llm_port}/v1",
        LLM_MODEL="gemma-3-270m",
        LLM_MAX_TOKENS="16",
        LLM_TIMEOUT_SECONDS="30",
        # Claims and sent-but-unconsumed messages count as lost after this (default 600 s):
        # short, so that the drill's recovery fits in minutes.
        KB_INGEST_STALE_SECONDS=str(args.stale_seconds),
        KB_INGEST_CONCURRENCY="4",
        HF_HUB_OFFLINE="1",
        PYTHONUNBUFFERED="1",
        LOG_LEVEL="INFO",
    )
    import psycopg

    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {args.database} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {args.database}")
    stack = Stack(work, env, redis_port, llm_port, web_port, gguf)
    result: dict[str, Any] = {}
    load: Load | None = None
    try:
        stack.start_redis()
        stack.start_llm()
        setup = manage_python(env, "setup")
        stack.start_serve()
        _wait(lambda: not set(statuses(stack, setup["documents"])) & UNSETTLED, 600, "samples")
        result["samples"] = statuses(stack, setup["documents"])
        load = Load(stack, setup["token"], setup["collection"], args.users)
        load.start()
        drills = {"llm": drill_llm, "redis": drill_redis, "index": drill_index}
        for name in args.drills:
            print(f"drill {name} ...", flush=True)
            try:
                result[name] = drills[name](stack, load, args)
            except RuntimeError as exc:  # a drill that did not recover is a result too
                result[name] = {"did_not_recover": str(exc), "phase": load.phase.as_json()}
        load.stop()
        # Uploads accepted after a drill's own wait (the load runs on) may still be on their
        # way: give them the same time before anything counts as lost.
        everything = [document for accepted in load.accepted.values() for document in accepted]
        draining = time.monotonic()
        settled, counts = wait_indexed(stack, everything, args.recovery_limit)
        result["after_the_load"] = {
            "uploads": len(everything), "all_indexed": settled, "statuses": counts,
            "drain_s": round(time.monotonic() - draining, 1),
        }  # fmt: skip
        stack.stop_web()
        verify = manage_python(env, "verify")
    finally:
        if load is not None:
            load.stopping.set()
        stack.stop_all()
    for name in [n for n in args.drills if n in result and "baseline" in result[n]]:
        accepted = load.accepted.get(name, []) if load else []
        indexed = [d for d in accepted if verify["documents"].get(str(d)) == "indexed"]
        result[name]["uploads_accepted"] = len(accepted)
        result[name]["uploads_indexed_after_recovery"] = len(indexed)
        failed = [d for d in accepted if verify["documents"].get(str(d)) in FAILED]
        result[name]["uploads_failed"] = len(failed)  # a coded error on the collection page
        result[name]["lost"] = len(accepted) - len(indexed) - len(failed)
        result[name]["errors"] = _errors(result[name])
    result["index_check"] = verify["index"]
    result["logs"] = str(work)
    return result


FAILED = {"failed", "quarantined"}
ERROR_KINDS = ("5xx", "timeout", "connection", "unexpected")


def _errors(drill: dict[str, Any]) -> dict[str, int]:
    """Errors by kind over the whole drill, outside the index drill's restart of the web process
    (connection errors there are the restart, counted in its own phase)."""
    total: Counter[str] = Counter()
    for key in ("baseline", "outage", "recovery"):
        for kind in ERROR_KINDS:
            total[kind] += drill[key]["outcomes"].get(kind, 0)
    return {kind: total[kind] for kind in ERROR_KINDS}


# --- steps run inside Django (with the drill's environment) --------------------------------


def _internal(step: str, rest: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kb.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from kb.library.models import Chunk, Document, DocumentVersion

    if step == "setup":
        from kb.accounts.models import Department, Membership
        from kb.api.tokens import issue_service_token
        from kb.library.models import Collection

        call_command("migrate", verbosity=0)
        call_command("seed_demo", "--no-ingest", verbosity=0)
        finance = Department.objects.get(slug="finance")
        token, secret = issue_service_token(
            account_name="drills-erp", name="drills", actions=["search", "ask", "ingest"],
            expires_days=1, rate_limit_per_minute=100_000, departments=[], collections=[],
        )  # fmt: skip
        Membership.objects.create(
            user=token.account.user, department=finance, role=Membership.Role.CURATOR
        )
        collection = Collection.objects.filter(department=finance).order_by("pk").first()
        assert collection is not None
        documents = list(Document.objects.values_list("pk", flat=True))
        out: Any = {"token": secret, "collection": collection.pk, "documents": documents}
    elif step == "statuses":
        ids = [int(x) for x in rest]
        # Each document's newest version (the last one wins in the dict).
        found = dict(
            DocumentVersion.objects.filter(document_id__in=ids)
            .order_by("document_id", "number")
            .values_list("document_id", "status")
        )
        out = dict(Counter(str(found.get(i, "missing")) for i in ids))
    elif step == "verify":
        from kb.library.components import get_index
        from kb.library.indexing import active_generation

        generation = active_generation()
        points = get_index().version_counts(generation.collection_name)
        live = DocumentVersion.objects.filter(index_state=DocumentVersion.IndexState.LIVE)
        mismatched = [
            version.pk
            for version in live
            if Chunk.objects.filter(version=version).count() != points.get(version.pk, 0)
        ]
        out = {
            # Each document's newest version's status (the last one wins).
            "documents": {
                str(document): status
                for document, status in DocumentVersion.objects.order_by(
                    "document_id", "number"
                ).values_list("document_id", "status")
            },
            "index": {
                "live_versions": live.count(),
                "database_chunks": Chunk.objects.filter(version__in=live).count(),
                "index_points": sum(points.get(v.pk, 0) for v in live),
                "versions_with_mismatch": mismatched,
            },
        }
    else:
        raise SystemExit(f"unknown step {step}")
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--baseline", type=float, default=10.0)
    parser.add_argument("--outage", type=float, default=30.0)
    parser.add_argument("--recovery-limit", type=float, default=240.0)
    parser.add_argument("--stale-seconds", type=int, default=20)
    parser.add_argument("--database", default="kb_drills")
    parser.add_argument("--models-dir", default="")
    parser.add_argument("--drills", nargs="+", default=["llm", "redis", "index"])
    parser.add_argument("--out", default="")
    parser.add_argument("--internal", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.internal:
        _internal(args.internal[0], args.internal[1:])
        return
    database_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/kb")
    started = time.monotonic()
    result = run(args, database_url)
    result.update(
        users=args.users, baseline_s=args.baseline, outage_s=args.outage,
        stale_seconds=args.stale_seconds, wall_s=round(time.monotonic() - started, 1),
        stack="PostgreSQL, redis-server (broker and cache), manage.py serve (waitress, "
        "embedded Celery worker, Qdrant Edge); index drill: uvicorn + celery worker with "
        "QDRANT_URL unreachable; llama.cpp server (gemma-3-270m) as the model",
        machine=machine(),
    )  # fmt: skip
    path = write_result("drills", result, Path(args.out) if args.out else None)
    for name in args.drills:
        drill = result[name]
        if "errors" not in drill:
            print(f"{name}: {drill}")
            continue
        print(f"{name}: errors {drill['errors']}, accepted {drill['uploads_accepted']}, "
              f"lost {drill['lost']}, recovered in {drill['time_to_recover_s']} s")  # fmt: skip
    print(f"index check: {result['index_check']} -> {path}")


if __name__ == "__main__":
    main()
