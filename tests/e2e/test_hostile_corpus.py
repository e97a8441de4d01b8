"""A hostile corpus through the real upload path and Celery worker (docs/security.md cases 7-10).

Every file fails alone, with a reason an admin can act on: refused at upload when the attack
is visible from the outside (type, size, zip structure, DTDs), or failed in the isolated
parser when it is not. The normal document queued after all of them is indexed, and no
external entity ever makes a connection.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from kb.library.models import Chunk, Collection, DocumentVersion
from tests.conftest import index_count, wait_for_version
from tests.e2e.conftest import start_embedded_worker
from tests.make_files import (
    write_circular_pdf,
    write_docx_entity_bomb,
    write_docx_external_entity,
    write_encrypted_pdf,
    write_html_with_entities,
    write_pixel_bomb_png,
    write_xlsx_entity_bomb,
    write_zip_bomb,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def listener() -> Iterator[tuple[str, list[object]]]:
    """A TCP listener on loopback that records every connection made to it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    connections: list[object] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, address = server.accept()
            except TimeoutError:
                continue
            connections.append(address)
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/xxe", connections
    stop.set()
    thread.join()
    server.close()


def post(client: Client, collection: Collection, name: str, content: bytes) -> tuple[int, str]:
    response = client.post(
        reverse("portal:collection", args=[collection.pk]),
        {"file": SimpleUploadedFile(name, content)},
        follow=True,
    )
    return response.redirect_chain[0][1] if response.redirect_chain else response.status_code, (
        response.content.decode()
    )


def test_each_hostile_file_fails_alone_and_the_next_document_is_indexed(
    fresh_index: None,
    alice: User,
    finance_collection: Collection,
    tmp_path: Path,
    listener: tuple[str, list[object]],
) -> None:
    url, connections = listener
    client = Client()
    client.force_login(alice)

    refused_at_upload = {
        # name: (content, HTTP status, words of the reason shown to the uploader)
        "bomb.zip": (write_zip_bomb(tmp_path / "b.zip").read_bytes(), 400, "zip bomb"),
        "laughs.docx": (
            write_docx_entity_bomb(tmp_path / "l.docx", tmp_path).read_bytes(),
            400,
            "XML document type declaration",
        ),
        "laughs.xlsx": (
            write_xlsx_entity_bomb(tmp_path / "l.xlsx", tmp_path).read_bytes(),
            400,
            "XML document type declaration",
        ),
        "xxe.docx": (
            write_docx_external_entity(tmp_path / "x.docx", tmp_path, url).read_bytes(),
            400,
            "XML document type declaration",
        ),
        "empty.txt": (b"", 400, "The submitted file is empty"),
        "invoice.pdf": (b"MZ\x90\x00 an executable", 415, "named as a PDF but is not one"),
        "photo.png": (b"<html><script>alert(1)</script></html>", 415, "named as PNG image"),
        "payload.exe": (b"MZ", 415, "files of type .exe are not supported"),
    }
    for name, (content, status, reason) in refused_at_upload.items():
        code, page = post(client, finance_collection, name, content)
        assert code == status, (name, code)
        assert reason in page, (name, page[:2000])
    assert not DocumentVersion.objects.exists()

    failing_in_the_parser = {
        # name: (content, error code)
        "circular.pdf": (
            write_circular_pdf(tmp_path / "c.pdf").read_bytes(),
            {"parse_error", "no_text"},
        ),
        "pixels.png": (write_pixel_bomb_png(tmp_path / "p.png").read_bytes(), {"unsafe_file"}),
        "locked.pdf": (
            write_encrypted_pdf(tmp_path / "e.pdf", tmp_path).read_bytes(),
            {"encrypted"},
        ),
        "garbage.pdf": (b"%PDF-1.7\n" + bytes(range(256)) * 64, {"parse_error", "no_text"}),
    }
    for name, (content, _) in failing_in_the_parser.items():
        assert post(client, finance_collection, name, content)[0] == 302, name
    entity_page = write_html_with_entities(tmp_path / "e.html", url).read_bytes()
    assert post(client, finance_collection, "entities.html", entity_page)[0] == 302
    normal = b"# Canteen\n\nThe canteen opens at eight and closes at three.\n"
    assert post(client, finance_collection, "canteen.md", normal)[0] == 302

    worker = start_embedded_worker()
    try:
        normal_version = DocumentVersion.objects.get(original_name="canteen.md")
        assert wait_for_version(normal_version.pk).status == "indexed"
        for name, (_, codes) in failing_in_the_parser.items():
            version = wait_for_version(DocumentVersion.objects.get(original_name=name).pk)
            assert version.status == "failed", (name, version.status)
            assert version.error_code in codes, (name, version.error_code, version.error)
            assert name in version.error
            assert not version.chunks.exists() and index_count(version_id=version.pk) == 0
        html = wait_for_version(DocumentVersion.objects.get(original_name="entities.html").pk)
    finally:
        worker.stop()

    # The HTML parser ignores the DTD: no file content, no expansion, no connection.
    assert html.status == "indexed"
    text = " ".join(Chunk.objects.filter(version=html).values_list("text", flat=True))
    assert "canteen opens at eight" in text
    assert "root:" not in text and "lollol" not in text
    assert connections == []
