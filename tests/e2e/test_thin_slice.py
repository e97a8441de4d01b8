"""The thin slice end to end: upload -> real Celery worker -> parse/chunk/embed/index -> ask.

Runs against the database and broker the settings name; `make test` points them at the real
PostgreSQL and Redis on loopback and sets KB_REQUIRE_SERVICES so this cannot silently fall
back to SQLite or the filesystem broker.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from kb.library.models import Chunk, Collection, Document, DocumentVersion
from tests.conftest import index_count, wait_for_version
from tests.make_files import write_docx, write_pdf

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def upload(client: Client, collection: Collection, name: str, content: bytes) -> DocumentVersion:
    response = client.post(
        reverse("portal:collection", args=[collection.pk]),
        {"file": SimpleUploadedFile(name, content)},
    )
    assert response.status_code == 302, response.content[:500]
    return DocumentVersion.objects.filter(document__collection=collection).get(original_name=name)


def ask(client: Client, question: str) -> str:
    response = client.post(reverse("portal:ask"), {"question": question})
    assert response.status_code == 200
    return response.content.decode()


def test_upload_ingest_and_ask_with_citations(
    celery_worker: None,
    alice: User,
    erin: User,
    finance_collection: Collection,
    tmp_path: Path,
) -> None:
    client = Client()
    assert client.login(username="alice", password="alice-password-1")
    files = {
        "travel.md": b"# Travel policy\n\n## Hotels\n\nThe hotel limit is 180 EUR per night in "
        b"Munich. Canary FIN-CANARY-7731.\n",
        "claims.txt": b"Expense claims are filed within 30 days of the trip.\n",
        "onboarding.docx": write_docx(
            tmp_path / "o.docx", "Onboarding", ["New hires receive a laptop on day one."]
        ).read_bytes(),
        "payments.pdf": write_pdf(
            tmp_path / "p.pdf",
            ["Payment terms overview.", "Supplier invoices are paid within 30 days net."],
        ).read_bytes(),
    }
    versions = [upload(client, finance_collection, n, c) for n, c in files.items()]
    for version in versions:
        done = wait_for_version(version.pk)
        assert done.status == DocumentVersion.Status.INDEXED, done.error
        assert done.embedding_model.startswith("sentence-transformers/all-MiniLM-L6-v2")
        # The database is the source of truth; the index holds exactly its chunks.
        assert index_count(version_id=done.pk) == done.chunks.count() == done.chunk_count > 0

    # Uploading the same bytes again adds nothing.
    again = client.post(
        reverse("portal:collection", args=[finance_collection.pk]),
        {"file": SimpleUploadedFile("travel-copy.md", files["travel.md"])},
    )
    assert again.status_code == 302
    assert Document.objects.filter(collection=finance_collection).count() == 4

    page = ask(client, "What is the hotel limit in Munich?")
    assert "FIN-CANARY-7731" in page
    citation = re.search(r'<a class="cite" href="(/documents/(\d+)/#chunk-(\d+))"', page)
    assert citation, page[:3000]
    travel = Document.objects.get(path="travel.md")
    assert int(citation.group(2)) == travel.pk
    cited_chunk = Chunk.objects.get(pk=int(citation.group(3)))
    assert "180 EUR" in cited_chunk.text
    viewer = client.get(citation.group(1).split("#")[0])
    assert viewer.status_code == 200
    assert f'id="chunk-{cited_chunk.pk}"'.encode() in viewer.content

    pdf_answer = ask(client, "When are supplier invoices paid?")
    pdf_doc = Document.objects.get(path="payments.pdf")
    assert f"/documents/{pdf_doc.pk}/#chunk-" in pdf_answer
    # Chunk texts are encrypted in the database: compared here, not in SQL.
    assert any("30 days net" in c.text for c in Chunk.objects.filter(document=pdf_doc, page=2))

    # Another department's member gets nothing from Finance, through any path.
    other = Client()
    assert other.login(username="erin", password="erin-password-1")
    foreign = ask(other, "What is the hotel limit in Munich?")
    assert "FIN-CANARY-7731" not in foreign
    assert "do not answer this question" in foreign
    assert other.get(reverse("portal:document", args=[travel.pk])).status_code == 404
    assert other.get(reverse("portal:download", args=[travel.pk])).status_code == 404


def test_a_broken_file_fails_alone_with_a_reason(
    celery_worker: None, alice: User, finance_collection: Collection
) -> None:
    client = Client()
    client.force_login(alice)
    broken = upload(client, finance_collection, "broken.pdf", b"%PDF-1.4 not a real pdf")
    good = upload(client, finance_collection, "good.txt", b"The cafeteria opens at 8 am.\n")
    failed = wait_for_version(broken.pk)
    assert (failed.status, failed.error_code) == ("failed", "parse_error")
    assert failed.error.startswith("'broken.pdf'")
    assert wait_for_version(good.pk).chunks.count() == 1
    assert index_count(version_id=broken.pk) == 0
