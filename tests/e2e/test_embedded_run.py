"""The embedded default as `make run` starts it: SQLite, Qdrant Edge, worker in-process.

Starts `manage.py serve` in a child process with no service environment at all and drives it
over HTTP like a browser would.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.llm_server import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def embedded_env(data_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        # EMBEDDING_ too: `make run` embeds with the default model (multilingual-e5-small).
        if not k.startswith(
            ("DATABASE_", "CELERY_", "QDRANT_", "LLM_", "KB_", "DJANGO_", "EMBEDDING_")
        )
    }
    env["KB_DATA_DIR"] = str(data_dir)
    return env


def login(session: requests.Session, base: str, username: str, password: str) -> None:
    session.get(f"{base}/login/")
    response = session.post(
        f"{base}/login/",
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        headers={"Referer": f"{base}/login/"},
        allow_redirects=False,
    )
    assert response.status_code == 302, response.text[:500]


def ask(session: requests.Session, base: str, question: str) -> str:
    response = session.post(
        f"{base}/",
        data={"question": question, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": f"{base}/"},
    )
    assert response.status_code == 200
    return response.text


def test_make_run_serves_a_working_portal(tmp_path: Path) -> None:
    env = embedded_env(tmp_path)
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, cwd=ROOT, check=True)
    seeded = subprocess.run(
        [*manage, "seed_demo", "--no-ingest"],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    assert re.search(r"alice\s+alice-demo-2026\s+Finance", seeded.stdout)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [*manage, "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        alice = requests.Session()
        deadline = time.monotonic() + 120
        while True:
            try:
                requests.get(f"{base}/login/", timeout=2)
                break
            except requests.ConnectionError:
                assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "portal did not start"
                time.sleep(0.5)
        login(alice, base, "alice", "alice-demo-2026")
        # seed_demo --no-ingest only queued the samples: the in-process worker must index them.
        collections = alice.get(f"{base}/collections/").text
        collection_id = re.search(r'href="/collections/(\d+)/">Finance policies', collections)
        assert collection_id, collections[:2000]
        status_url = f"{base}/collections/{collection_id.group(1)}/status/"
        while True:
            statuses = {d["status"] for d in alice.get(status_url).json()["documents"]}
            if statuses == {"indexed"}:
                break
            assert "failed" not in statuses
            assert time.monotonic() < deadline + 120, statuses
            time.sleep(1)
        answer = ask(alice, base, "Who approves invoices above 50,000 EUR?")
        assert "CFO" in answer
        link = re.search(r'<a class="cite" href="(/documents/\d+/)#chunk-\d+"', answer)
        assert link, answer[:3000]
        assert "CFO" in alice.get(base + link.group(1)).text

        # The same question streamed the way the portal's script asks it: server-sent events
        # arrive piece by piece over the real server (no model here: passages, then done).
        with alice.post(
            f"{base}/ask/stream/",
            data={"question": "Who approves invoices above 50,000 EUR?",
                  "csrfmiddlewaretoken": alice.cookies["csrftoken"]},
            headers={"Referer": f"{base}/"}, stream=True,
        ) as streamed:  # fmt: skip
            assert streamed.headers["Content-Type"].startswith("text/event-stream")
            pieces = list(streamed.iter_content(chunk_size=None))
        body = b"".join(pieces).decode()
        assert len(pieces) >= 2  # sources first, the answer after: not one buffered block
        assert body.startswith("event: sources") and "event: done" in body and "CFO" in body

        # No model configured: the answer is the passages' answering sentences, cited, not
        # the passages whole (the travel policy's other rules stay out).
        extract = re.search(r'<div class="answer-text [^"]*">(.*?)</div>', answer, re.S)
        assert extract, answer[:3000]
        assert "CFO" in extract.group(1) and "hotel" not in extract.group(1).lower()
        # The demo speaks Chinese: the Chinese travel policy answers a Chinese question.
        chinese = ask(alice, base, "慕尼黑的酒店每晚限额是多少？")
        assert "180" in chinese and "差旅与报销制度" in chinese

        bob = requests.Session()
        login(bob, base, "bob", "bob-demo-2026")
        foreign = ask(bob, base, "Who approves invoices above 50,000 EUR?")
        assert "CFO" not in foreign and "LEDGER-HERON" not in foreign
        # Nothing of Engineering's answers it: "not in your documents", not unrelated passages.
        assert "The documents you can access do not answer this question." in foreign
        assert bob.get(base + link.group(1)).status_code == 404
        assert bob.get(f"{base}/static/kb.css").status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
