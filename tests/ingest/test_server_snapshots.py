"""The server adapter's snapshot transfers, against a stand-in for Qdrant's REST API.

No Qdrant server runs on the CI machine and qdrant-client's local mode has no snapshots, so
the contract suite sees the server adapter's local-mode path only. This stand-in answers the
few REST calls a snapshot and a restore make, as Qdrant documents them, and records what it
was sent: that the adapter asks for a snapshot, downloads it with the configured API key and
deletes it, and uploads one back with the snapshot taking precedence.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from qdrant_client import QdrantClient

from ingest.index import SnapshotRefused
from ingest.index.qdrant_server import QdrantServerIndex

C = "kb_test__g1"
SNAPSHOT = f"{C}-1234-2025-01-01-00-00-00.snapshot"
API_KEY = "test-api-key"
# More than one transfer block, so the download is streamed in pieces.
CONTENT = bytes(range(256)) * 5000


class FakeQdrant(BaseHTTPRequestHandler):
    calls: list[tuple[str, str, dict[str, list[str]], str | None]]
    uploads: list[bytes]
    refuse_uploads = False

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, result: object, status: int = 200) -> None:
        body = json.dumps({"result": result, "status": "ok", "time": 0.0}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _record(self) -> tuple[str, dict[str, list[str]]]:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        self.calls.append((self.command, url.path, query, self.headers.get("api-key")))
        return url.path, query

    def do_GET(self) -> None:
        path, _ = self._record()
        if path == f"/collections/{C}/exists":
            self._reply({"exists": True})
        elif path == "/collections":
            self._reply({"collections": [{"name": C}]})
        elif path == "/aliases":
            self._reply({"aliases": [{"alias_name": "kb_test", "collection_name": C}]})
        elif path == f"/collections/{C}/snapshots/{SNAPSHOT}":
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(CONTENT)))
            self.end_headers()
            self.wfile.write(CONTENT)
        else:
            self._reply(None, 404)

    def do_POST(self) -> None:
        path, _ = self._record()
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if path == f"/collections/{C}/snapshots":
            self._reply({"name": SNAPSHOT, "creation_time": None, "size": len(CONTENT)})
        elif path == f"/collections/{C}/snapshots/upload":
            self.uploads.append(body)
            if self.refuse_uploads:
                self._reply(None, 400)
            else:
                self._reply(True)
        elif path == "/collections/aliases":
            self._reply(True)
        else:
            self._reply(None, 404)

    def do_DELETE(self) -> None:
        self._record()
        self._reply(True)


@pytest.fixture
def server() -> Iterator[tuple[type[FakeQdrant], QdrantServerIndex]]:
    handler = type("Handler", (FakeQdrant,), {"calls": [], "uploads": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    client = QdrantClient(
        url=f"http://127.0.0.1:{httpd.server_address[1]}",
        api_key=API_KEY,
        https=False,
        check_compatibility=False,
    )
    index = QdrantServerIndex(client)
    try:
        yield handler, index
    finally:
        index.close()
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")
def test_a_snapshot_is_made_downloaded_and_deleted_on_the_server(
    server: tuple[type[FakeQdrant], QdrantServerIndex], tmp_path: Path
) -> None:
    handler, index = server
    files = index.snapshot([C], tmp_path / "snapshot")
    assert files == sorted(
        [tmp_path / "snapshot" / "aliases.json", tmp_path / "snapshot" / f"{C}.snapshot"]
    )
    assert (tmp_path / "snapshot" / f"{C}.snapshot").read_bytes() == CONTENT
    assert json.loads((tmp_path / "snapshot" / "aliases.json").read_text()) == {"kb_test": C}
    # Nothing else, no partial download either.
    assert {p.name for p in (tmp_path / "snapshot").iterdir()} == {f"{C}.snapshot", "aliases.json"}
    made = [c for c in handler.calls if c[0] == "POST" and c[1] == f"/collections/{C}/snapshots"]
    assert made and made[0][2].get("wait") == ["true"]
    download = [c for c in handler.calls if c[0] == "GET" and c[1].endswith(SNAPSHOT)]
    assert download and download[0][3] == API_KEY
    deleted = [c for c in handler.calls if c[0] == "DELETE"]
    assert [c[1] for c in deleted] == [f"/collections/{C}/snapshots/{SNAPSHOT}"]
    # The snapshot is deleted only after it was downloaded.
    assert handler.calls.index(deleted[0]) > handler.calls.index(download[0])


@pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")
def test_a_snapshot_is_uploaded_back_taking_precedence(
    server: tuple[type[FakeQdrant], QdrantServerIndex], tmp_path: Path
) -> None:
    handler, index = server
    source = tmp_path / "snapshot"
    source.mkdir()
    (source / f"{C}.snapshot").write_bytes(CONTENT)
    (source / "aliases.json").write_text(json.dumps({"kb_test": C}))
    assert index.restore(source) == [C]
    [upload] = [c for c in handler.calls if c[1].endswith("/snapshots/upload")]
    assert upload[1] == f"/collections/{C}/snapshots/upload"
    assert upload[2].get("priority") == ["snapshot"] and upload[2].get("wait") == ["true"]
    assert upload[3] == API_KEY
    assert CONTENT in handler.uploads[0]  # the file itself, in a multipart body
    assert any(c[1] == "/collections/aliases" for c in handler.calls)  # the alias set back


@pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")
def test_a_refused_upload_says_so(
    server: tuple[type[FakeQdrant], QdrantServerIndex], tmp_path: Path
) -> None:
    handler, index = server
    handler.refuse_uploads = True
    (tmp_path / f"{C}.snapshot").write_bytes(CONTENT)
    with pytest.raises(SnapshotRefused, match=f"refused the snapshot of {C}"):
        index.restore(tmp_path)
