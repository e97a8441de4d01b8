"""The example ERP client (examples/erp_client.py) against a live server: pushed files are
indexed by a real Celery worker while the client waits, a second push adds nothing, and a
question is answered from them with numbered sources."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_django.live_server_helper import LiveServer

from kb.library.models import Collection, Document, DocumentVersion
from tests.e2e.conftest import start_embedded_worker

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CLIENT = Path(__file__).resolve().parents[2] / "examples" / "erp_client.py"

FILES = {
    "travel/hotels.md": "# Hotels\n\nThe hotel limit is 180 EUR per night in Munich "
    "(ERP-CANARY-4411).\n",
    "claims.txt": "Expense claims are filed within 30 days of the trip.\n",
    "payments.txt": "Supplier invoices are paid within 45 days net.\n",
}


@pytest.fixture
def celery_worker(fresh_index: None) -> Iterator[None]:
    worker = start_embedded_worker("example-client@localhost")
    yield
    worker.stop()


def run_client(live_server: LiveServer, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CLIENT), "--base-url", live_server.url, *args],
        env={**os.environ, "KB_API_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_push_a_folder_then_ask(
    celery_worker: None,
    live_server: LiveServer,
    finance_erp: str,
    finance_collection: Collection,
    tmp_path: Path,
) -> None:
    folder = tmp_path / "export"
    for name, text in FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    collection = str(finance_collection.pk)

    push = run_client(live_server, finance_erp, "push", str(folder), "--collection", collection)
    assert push.returncode == 0, push.stdout + push.stderr
    assert "Uploaded: 3 created" in push.stdout and "Status:   3 indexed" in push.stdout
    documents = Document.objects.filter(collection=finance_collection)
    assert sorted(documents.values_list("path", flat=True)) == sorted(FILES)
    assert {d.current_version.status for d in documents if d.current_version} == {"indexed"}
    assert all(d.current_version and d.current_version.chunk_count > 0 for d in documents)

    # The same folder again: every upload is replayed from its Idempotency-Key.
    again = run_client(live_server, finance_erp, "push", str(folder), "--collection", collection)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Uploaded: 3 replayed" in again.stdout
    assert Document.objects.filter(collection=finance_collection).count() == 3
    assert DocumentVersion.objects.filter(document__collection=finance_collection).count() == 3

    answer = run_client(live_server, finance_erp, "ask", "What is the hotel limit in Munich?")
    assert answer.returncode == 0, answer.stdout + answer.stderr
    assert "180 EUR" in answer.stdout and "ERP-CANARY-4411" in answer.stdout
    assert "Sources:" in answer.stdout and "[1] " in answer.stdout

    # Errors are the API's problem details, printed as `title: detail`.
    missing = run_client(live_server, finance_erp, "push", str(folder), "--collection", "999999")
    assert missing.returncode == 1
    assert "Not found: No such collection." in missing.stdout
    refused = run_client(live_server, "kbt_00000000.wrong", "ask", "What is the hotel limit?")
    assert refused.returncode == 2
    assert refused.stderr.strip() == "Not authenticated: The token is not valid."
