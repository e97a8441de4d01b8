"""The whole ingest and answer path with no route to anywhere (docs/security.md case 16).

The embedded default (SQLite, Qdrant Edge, the filesystem broker with the command's own Celery
worker, the parser child, the embedding model, a local GGUF through llama.cpp) runs in a
network namespace of its own with only `lo` up: migrate, seed the demo (which ingests the
finance samples), `manage.py ingest` a folder into a new collection, and answer a question.
Two witnesses count outbound attempts, and both must count zero:

- the offline guard in `log` mode, which logs every connection or name lookup outside the
  configured services made through Python's socket module (kb/ops/offline.py);
- strace on the whole process tree, which sees every connect/sendto/sendmsg system call,
  native code's included (a DNS query is a datagram to the resolver: it would show too).

None of the telemetry switches comes from the test: the product must set them itself.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import ingest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e

QUESTION = "Who approves invoices above 50,000 EUR?"
ANSWER_SCRIPT = f"""
import json
from django.contrib.auth import get_user_model
from kb.library.models import Chunk
from tests.asking import answer_question

alice = get_user_model().objects.get(username="alice")
answer = answer_question(alice, {QUESTION!r})
print("RESULT " + json.dumps({{
    "chunks": Chunk.objects.count(),
    "mode": answer.mode,
    "text": answer.text,
    "model": answer.model,
    "cited": [s.text for s in answer.cited_sources],
    "sources": [s.text for s in answer.sources],
}}))
"""
# In the namespace: loopback up, no route at all, then each step under strace (whose trace
# holds only the product's processes); any failure stops the run.
NAMESPACE = """
set -e
ip link set lo up
if ip route get 192.0.2.1 >/dev/null 2>&1; then echo "a route exists" >&2; exit 97; fi
exec "$STRACE" -f -qq --seccomp-bpf -e trace=connect,sendto,sendmsg -o "$TRACE" sh -c "$STEPS"
"""
STEPS = """
set -e
M="$PYTHON manage.py"
$M migrate -v0
$M seed_demo
$M ingest sample_docs/engineering --collection "Offline check" --department engineering --create
$M shell -c "$ANSWER_SCRIPT"
# Once more with no model: the extractive answer, which cites its passages.
env -u LLM_GGUF_PATH $M shell -c "$ANSWER_SCRIPT"
# The witness's own check: a connection it must see (loopback, port 9: nothing listens).
$PYTHON -c "import socket; socket.socket().connect_ex(('127.0.0.1', 9))"
"""
# strace's view of a socket address: IPv4 and IPv6 (Unix and netlink addresses are local).
INET = re.compile(r'inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6,\s*"([^"]+)"')
LOOPBACK = re.compile(r"^(127\.|::1$|::ffff:127\.|0\.0\.0\.0$|::$)")


def why_namespaces_cannot_run() -> str | None:
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"network namespaces are not permitted here: {probe.stderr.strip()}"
    return None


def outbound(trace: str) -> list[str]:
    """The system calls in strace's log that addressed anything but loopback."""
    found = []
    for line in trace.splitlines():
        if "AF_NETLINK" in line:
            continue  # a query to the kernel, whose payload may hold an address
        for match in INET.finditer(line):
            address = match.group(1) or match.group(2)
            if not LOOPBACK.match(address):
                found.append(line.strip())
    return found


def test_ingest_and_answer_with_no_route_make_no_outbound_attempt(
    tmp_path: Path, gguf_path: Path
) -> None:
    reason = why_namespaces_cannot_run()
    if reason:
        pytest.skip(reason)
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed (Debian: strace): no witness for native code")
    # Only the embedded default: no service variable, none of the switches (the product sets
    # them), the guard logging rather than refusing, so that an attempt shows instead of
    # failing somewhere with a less clear error.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ingest.OFFLINE_ENVIRONMENT
        and not k.startswith(
            ("DATABASE_", "CELERY_", "CACHE_", "QDRANT_", "LLM_", "KB_", "DJANGO_", "HF_")
        )
    }
    env |= {
        "KB_DATA_DIR": str(tmp_path / "data"),
        "KB_OFFLINE_GUARD": "log",
        "LLM_GGUF_PATH": str(gguf_path),
        "PYTHON": sys.executable,
        "ANSWER_SCRIPT": ANSWER_SCRIPT,
        "PYTHONUNBUFFERED": "1",
    }
    trace_file = tmp_path / "strace.log"
    env |= {"STRACE": strace, "TRACE": str(trace_file), "STEPS": STEPS}
    done = subprocess.run(
        ["unshare", "--net", "sh", "-c", NAMESPACE],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]

    # The path worked: documents indexed, the question answered from them by the local model
    # and, with no model, by the cited passages.
    generated, extractive = (
        json.loads(line.removeprefix("RESULT "))
        for line in output.splitlines()
        if line.startswith("RESULT ")
    )
    assert generated["chunks"] > 0
    assert generated["mode"] == "generated" and generated["model"].startswith("llama.cpp")
    assert any("CFO" in text for text in generated["sources"]), generated
    assert extractive["mode"] == "extractive"
    assert any("CFO" in text for text in extractive["cited"]), extractive
    assert re.search(r"files accepted \(\d+ to ingest", output), output[-3000:]

    # ... and nothing tried to leave.
    assert "offline guard" not in output, [
        line for line in output.splitlines() if "offline guard" in line
    ]
    trace = trace_file.read_text()
    assert re.search(r'connect\(.*htons\(9\).*inet_addr\("127\.0\.0\.1"\)', trace), trace[-3000:]
    assert outbound(trace) == []


def test_the_trace_reader_finds_outbound_addresses() -> None:
    v6 = "sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), inet_pton(AF_INET6"
    trace = "\n".join(
        [
            '101 connect(7, {sa_family=AF_UNIX, sun_path="/run/x"}, 110) = 0',
            '102 connect(8, {sa_family=AF_INET, sin_port=htons(9), sin_addr=inet_addr("127.0.0.1")'
            "}, 16) = -1 ECONNREFUSED",
            '103 sendto(9, "..", 40, 0, {sa_family=AF_INET, sin_port=htons(53), '
            'sin_addr=inet_addr("10.255.255.53")}, 16) = -1 ENETUNREACH',
            f'104 connect(10, {{{v6}, "2606:4700::1"), sin6_scope_id=0}}, 28) = -1 ENETUNREACH',
            f'105 connect(11, {{{v6}, "::1"), sin6_scope_id=0}}, 28) = 0',
        ]
    )
    assert [line.split()[0] for line in outbound(trace)] == ["103", "104"]
