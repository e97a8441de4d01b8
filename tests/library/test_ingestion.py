"""The ingestion pipeline through the real parser process, embedder, index and database.

Versions are ingested synchronously here (ingest_version is what the Celery task calls); the
worker-driven paths are in tests/e2e.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import default_storage
from django.db import connection

from ingest.index import AccessScope
from kb.answering.retrieval import search_passages
from kb.library import ingestion
from kb.library.components import get_index
from kb.library.indexing import active_generation
from kb.library.ingestion import claim_version, ingest_version, recover_ingestion
from kb.library.models import Chunk, Collection, Document, DocumentVersion
from kb.library.services import (
    UploadRejected,
    UploadResult,
    delete_document,
    retry_version,
    upload_any,
    upload_document,
)
from tests.conftest import index_count
from tests.make_files import (
    FONT_LATIN,
    png_bytes,
    write_csv,
    write_docx,
    write_eml,
    write_pdf,
    write_pptx,
    write_scanned_pdf,
    write_xlsx,
    write_zip,
    write_zip_bomb,
)

pytestmark = pytest.mark.usefixtures("fresh_index")
Status = DocumentVersion.Status


def upload(collection: Collection, name: str, content: bytes, path: str = "") -> UploadResult:
    return upload_document(
        collection=collection,
        name=name,
        stream=io.BytesIO(content),
        size=len(content),
        uploaded_by_id=None,
        path=path or None,
    )


def ingest(collection: Collection, name: str, content: bytes, path: str = "") -> DocumentVersion:
    result = upload(collection, name, content, path)
    status = ingest_version(result.version.pk)
    version = DocumentVersion.objects.get(pk=result.version.pk)
    assert status == Status.INDEXED, (version.error_code, version.error)
    return version


def chunk_with(version: DocumentVersion, needle: str) -> Chunk:
    return next(c for c in version.chunks.all() if needle in c.text)


def found(collection: Collection, question: str) -> list[str]:
    hits = search_passages(question, AccessScope(frozenset({collection.pk})))
    chunks = Chunk.objects.in_bulk([h.chunk_id for h in hits])
    return [chunks[h.chunk_id].text for h in hits if h.chunk_id in chunks]


def index_matches_database() -> None:
    live = DocumentVersion.objects.filter(index_state=DocumentVersion.IndexState.LIVE)
    assert index_count() == Chunk.objects.filter(version__in=live).count()


# --- every format -------------------------------------------------------------------------

FORMATS: dict[str, Callable[[Path], tuple[str, bytes, str, int | None, str]]] = {
    # name -> (file name, bytes, a phrase, its page, its section title)
    "pdf": lambda d: (
        "payments.pdf",
        write_pdf(
            d / "p", ["Payment terms overview.", "Invoices are paid within 30 days."]
        ).read_bytes(),
        "within 30 days",
        2,
        "",
    ),
    "scanned-pdf": lambda d: (
        "contract.pdf",
        write_scanned_pdf(
            d / "s", [(["Cover page"], FONT_LATIN), (["Delivery within 14 days."], FONT_LATIN)]
        ).read_bytes(),
        "14 days",
        2,
        "",
    ),
    "docx": lambda d: (
        "handbook.docx",
        write_docx(
            d / "d", "Handbook", ["Laptops are replaced every three years."], "Equipment"
        ).read_bytes(),
        "three years",
        None,
        "Equipment",
    ),
    "pptx": lambda d: (
        "review.pptx",
        write_pptx(
            d / "p", [("Results", "Revenue grew 4 percent."), ("Plans", "Open Berlin.")]
        ).read_bytes(),
        "Open Berlin",
        2,
        "Plans",
    ),
    "xlsx": lambda d: (
        "rates.xlsx",
        write_xlsx(d / "x", {"Rates": [["City", "Limit"], ["Munich", "180 EUR"]]}).read_bytes(),
        "Munich | 180 EUR",
        1,
        "Rates",
    ),
    "csv": lambda d: (
        "codes.csv",
        write_csv(d / "c", [["Code", "Meaning"], ["R2", "Rejected"]]).read_bytes(),
        "Code | Meaning\nR2 | Rejected",
        None,
        "",
    ),
    "html": lambda d: (
        "it.html",
        b"<html><body><h1>IT</h1><h2>VPN</h2><p>Use the VPN from home.</p></body></html>",
        "VPN from home",
        None,
        "VPN",
    ),
    "markdown": lambda d: (
        "travel.md",
        b"# Travel\n\n## Hotels\n\nThe hotel limit is 180 EUR.\n",
        "180 EUR",
        None,
        "Hotels",
    ),
    "text": lambda d: ("notes.txt", b"The canteen opens at eight.\n", "canteen", None, ""),
    "eml": lambda d: (
        "freeze.eml",
        write_eml(
            d / "e", "Budget freeze", "cfo@example.com", "The budget is frozen.\n"
        ).read_bytes(),
        "budget is frozen",
        None,
        "Budget freeze",
    ),
    "png": lambda d: ("memo.png", png_bytes(["Parking is free on Fridays."]), "Fridays", 1, ""),
}


@pytest.mark.parametrize("kind", FORMATS)
def test_every_format_is_ingested_with_text_pages_and_sections(
    kind: str, finance_collection: Collection, tmp_path: Path
) -> None:
    name, content, phrase, page, section = FORMATS[kind](tmp_path)
    version = ingest(finance_collection, name, content)
    chunk = chunk_with(version, phrase)
    assert (chunk.page, chunk.section_title) == (page, section)
    assert version.chunk_count == version.chunks.count() == index_count(version_id=version.pk)
    assert version.embedding_model.startswith("sentence-transformers/all-MiniLM-L6-v2@")
    assert version.progress == 100 and version.parse_seconds is not None
    assert phrase.split("\n")[0] in found(finance_collection, phrase)[0]


def test_a_zip_becomes_documents_with_its_folder_paths(finance_collection: Collection) -> None:
    archive = write_zip(
        Path(default_storage.path("")) / "upload.zip",
        {
            "hr/leave/annual.md": b"# Annual leave\n\nEveryone gets 28 days.\n",
            "hr/leave/sick.txt": b"Report sickness before 9 am.\n",
            "finance/nested.zip": b"PK\x03\x04 not expanded",
            "tools/setup.exe": b"MZ",
        },
    ).read_bytes()
    batch = upload_any(
        collection=finance_collection,
        name="hr.zip",
        stream=io.BytesIO(archive),
        size=len(archive),
        uploaded_by_id=None,
    )
    assert sorted(r.document.path for r in batch.results) == [
        "hr/leave/annual.md",
        "hr/leave/sick.txt",
    ]
    assert batch.results[0].document.folder == "hr/leave"
    assert dict(batch.refused).keys() == {"finance/nested.zip", "tools/setup.exe"}
    assert "archives inside archives" in dict(batch.refused)["finance/nested.zip"]
    for result in batch.results:
        assert ingest_version(result.version.pk) == Status.INDEXED


def test_a_zip_bomb_is_refused_whole(finance_collection: Collection, tmp_path: Path) -> None:
    bomb = write_zip_bomb(tmp_path / "bomb.zip", expanded_mb=64).read_bytes()
    with pytest.raises(UploadRejected, match="zip bomb") as refused:
        upload_any(
            collection=finance_collection,
            name="bomb.zip",
            stream=io.BytesIO(bomb),
            size=len(bomb),
            uploaded_by_id=None,
        )
    assert refused.value.status == 400
    assert not Document.objects.exists()


def test_a_chinese_document_is_chunked_on_sentence_boundaries(
    finance_collection: Collection,
) -> None:
    sentences = [
        f"第{i}条：员工出差结束后，应在三十天内提交报销申请，并附上发票原件。" for i in range(60)
    ]
    text = "差旅报销规定\n\n" + "".join(sentences) + "\n"
    version = ingest(finance_collection, "差旅.txt", text.encode("utf-8"))
    chunks = list(version.chunks.order_by("ordinal"))
    assert len(chunks) > 3
    for chunk in chunks:
        body = chunk.text.removeprefix("差旅报销规定\n")
        assert body.startswith("第") and body.endswith("。"), chunk.text
        assert chunk.section_title == "差旅报销规定"


# --- exactly once, versions ----------------------------------------------------------------


def test_the_same_bytes_twice_add_nothing(finance_collection: Collection) -> None:
    first = upload(finance_collection, "policy.md", b"# Policy\n\nText.\n")
    again = upload(finance_collection, "copy-of-policy.md", b"# Policy\n\nText.\n")
    assert (first.outcome, again.outcome) == ("created", "duplicate")
    assert again.version.pk == first.version.pk
    assert DocumentVersion.objects.count() == 1
    ingest_version(first.version.pk)
    assert ingest_version(first.version.pk) == "skipped"  # a redelivered task does nothing
    assert upload(finance_collection, "policy.md", b"# Policy\n\nText.\n").outcome == "duplicate"
    assert Chunk.objects.count() == index_count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_changed_file_replaces_its_old_version_with_no_gap_and_no_overlap(
    finance_collection: Collection, monkeypatch: pytest.MonkeyPatch, settings: object
) -> None:
    settings.KB_PURGE_GRACE_SECONDS = 0  # type: ignore[attr-defined]
    old = ingest(finance_collection, "travel.md", b"# Travel\n\nThe hotel limit is 180 EUR.\n")
    question = "What is the hotel limit?"
    assert any("180 EUR" in t for t in found(finance_collection, question))

    # Searches run continuously while version 2 is ingested: each must see exactly one
    # version, the old one until the switch and the new one after it.
    seen: list[tuple[bool, bool]] = []
    stop = threading.Event()

    def search_continuously() -> None:
        try:
            while not stop.is_set():
                texts = " ".join(found(finance_collection, question))
                seen.append(("180 EUR" in texts, "210 EUR" in texts))
        finally:
            connection.close()

    reader = threading.Thread(target=search_continuously)
    hidden_points: list[int] = []
    real_flip = ingestion._flip

    def flip_and_record(claim: ingestion._Claim, *args: object) -> str:
        # The new points are in the index here, but hidden.
        hidden_points.append(index_count(version_id=claim.version.pk))
        assert not any("210 EUR" in t for t in found(finance_collection, question))
        return real_flip(claim, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(ingestion, "_flip", flip_and_record)
    reader.start()
    try:
        new = upload(finance_collection, "travel.md", b"# Travel\n\nThe hotel limit is 210 EUR.\n")
        assert new.outcome == "new_version" and new.version.number == 2
        assert ingest_version(new.version.pk) == Status.INDEXED
        for _ in range(20):  # keep reading for a moment after the switch
            found(finance_collection, question)
    finally:
        stop.set()
        reader.join()

    assert hidden_points and hidden_points[0] > 0
    assert seen and all(a != b for a, b in seen), "a search saw both versions or neither"
    assert seen[0] == (True, False) and seen[-1] == (False, True)
    old.refresh_from_db()
    assert (old.status, old.index_state) == (Status.SUPERSEDED, "hidden")
    assert Document.objects.get().current_version_id == new.version.pk

    recover_ingestion()  # purges the replaced version after the grace period
    old.refresh_from_db()
    assert old.index_state == "none" and not old.chunks.exists()
    assert index_count(version_id=old.pk) == 0
    index_matches_database()


def test_a_failed_new_version_leaves_the_old_one_searchable(
    finance_collection: Collection, tmp_path: Path
) -> None:
    good = write_pdf(tmp_path / "r", ["Munich hotel rate: 180 EUR."]).read_bytes()
    ingest(finance_collection, "rates.pdf", good)
    broken = upload(finance_collection, "rates.pdf", b"%PDF-1.4\nnot really a PDF")
    assert broken.outcome == "new_version"
    assert ingest_version(broken.version.pk) == Status.FAILED
    assert any("180 EUR" in t for t in found(finance_collection, "Munich hotel rate"))
    assert Document.objects.get().current_version.number == 1  # type: ignore[union-attr]


def test_deleting_removes_rows_files_and_points(
    finance_collection: Collection, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    v1 = ingest(finance_collection, "a.md", b"# A\n\nFirst.\n")
    v2 = ingest(finance_collection, "a.md", b"# A\n\nSecond.\n")
    files = [str(v1.original.name), str(v2.original.name)]
    assert all(default_storage.exists(name) for name in files)
    with django_capture_on_commit_callbacks(execute=True):
        assert delete_document(v2.document_id)
    assert not Document.objects.exists() and not Chunk.objects.exists()
    assert index_count() == 0
    assert not any(default_storage.exists(name) for name in files)


# --- failures, crashes, quarantine ---------------------------------------------------------


def test_a_file_that_keeps_killing_its_worker_is_quarantined(
    finance_collection: Collection, settings: object
) -> None:
    version = upload(finance_collection, "evil.md", b"# Evil\n\nx\n").version
    for attempt in range(1, 4):
        claimed = claim_version(version.pk, f"worker-{attempt}@host:1")
        assert claimed is not None and claimed.attempts == attempt
        # The worker dies here; its node restarts and recovers the claim.
        assert recover_ingestion(f"worker-{attempt}@host:")["requeued"] == 1
    assert ingest_version(version.pk) == "skipped"
    version.refresh_from_db()
    assert (version.status, version.error_code) == (Status.QUARANTINED, "quarantined")
    assert "died 3 times" in version.error
    assert retry_version(version.pk)  # an admin looked at it and tries again
    assert ingest_version(version.pk) == Status.INDEXED


def test_a_dependency_failure_gives_the_version_back_for_a_retry(
    finance_collection: Collection, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = upload(finance_collection, "a.md", b"# A\n\nText.\n").version

    def index_down(*args: object) -> None:
        raise ConnectionError("index unreachable")

    monkeypatch.setattr(ingestion, "write_version", index_down)
    with pytest.raises(ingestion.TransientIngestError, match="index unreachable"):
        ingest_version(version.pk)
    version.refresh_from_db()
    assert (version.status, version.error_code) == (Status.QUEUED, "retrying")
    monkeypatch.undo()
    assert ingest_version(version.pk) == Status.INDEXED
    index_matches_database()


def test_recovery_requeues_stale_claims_only(
    finance_collection: Collection, settings: object
) -> None:
    version = upload(finance_collection, "a.md", b"# A\n\nText.\n").version
    claim_version(version.pk, "busy@host:7")
    assert recover_ingestion()["requeued"] == 0  # its heartbeat is fresh
    settings.KB_INGEST_STALE_SECONDS = 0  # type: ignore[attr-defined]
    assert recover_ingestion()["requeued"] == 1
    assert DocumentVersion.objects.get(pk=version.pk).status == Status.QUEUED


def test_recovery_resends_versions_whose_message_was_lost(
    finance_collection: Collection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version sent to the broker but still queued after KB_INGEST_STALE_SECONDS lost its
    message (a Redis restarted without persistence): the sweep sends it again; a version sent
    just now is left alone. The worker here is Celery's eager mode: the resent task runs."""
    from datetime import timedelta

    from django.utils import timezone

    from kb.celery import app

    lost = upload(finance_collection, "lost.md", b"# Lost\n\nIts message died.\n").version
    fresh = upload(finance_collection, "fresh.md", b"# Fresh\n\nIn the queue.\n").version
    now = timezone.now()
    DocumentVersion.objects.filter(pk=lost.pk).update(enqueued_at=now - timedelta(hours=1))
    DocumentVersion.objects.filter(pk=fresh.pk).update(
        enqueued_at=now, created_at=now - timedelta(hours=1)
    )
    monkeypatch.setitem(app.conf, "task_always_eager", True)
    assert recover_ingestion()["resent"] == 1
    assert DocumentVersion.objects.get(pk=lost.pk).status == Status.INDEXED
    assert DocumentVersion.objects.get(pk=fresh.pk).status == Status.QUEUED
    assert index_count(version_id=lost.pk) > 0
    assert recover_ingestion()["resent"] == 0  # nothing is resent twice
    index_matches_database()


def test_the_index_generation_is_recorded(finance_collection: Collection) -> None:
    version = ingest(finance_collection, "a.md", b"# A\n\nText.\n")
    generation = active_generation()
    assert get_index().alias_target("kb_chunks") == generation.collection_name
    assert version.embedding_model == generation.model_id
