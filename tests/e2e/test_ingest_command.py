"""`manage.py ingest PATH --collection NAME` against a running worker."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from kb.library.models import Collection, Document, DocumentVersion
from tests.make_files import write_docx, write_zip

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def run_ingest(folder: Path, *args: str) -> tuple[str, int]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("ingest", str(folder), *args, stdout=out, stderr=err)
    except CommandError as exc:
        return out.getvalue() + str(exc), exc.returncode
    return out.getvalue(), 0


def test_a_folder_is_loaded_with_progress_and_a_summary(
    celery_worker: None, finance_collection: Collection, tmp_path: Path
) -> None:
    folder = tmp_path / "share"
    (folder / "policies" / "travel").mkdir(parents=True)
    (folder / "policies" / "travel" / "hotels.md").write_text("# Hotels\n\nLimit 180 EUR.\n")
    write_docx(folder / "policies" / "onboarding.docx", "Onboarding", ["Laptop on day one."])
    write_zip(folder / "archive.zip", {"2025/minutes.txt": b"The board met in March.\n"})
    (folder / "tool.exe").write_bytes(b"MZ")
    (folder / ".hidden.txt").write_text("not ingested")

    output, status = run_ingest(folder, "--collection", "Finance policies")
    assert status == 2
    assert "Indexed 3 documents" in output
    assert "refused: tool.exe: 'tool.exe': files of type .exe are not supported" in output
    assert sorted(Document.objects.values_list("path", flat=True)) == [
        "archive/2025/minutes.txt",
        "policies/onboarding.docx",
        "policies/travel/hotels.md",
    ]
    assert set(DocumentVersion.objects.values_list("status", flat=True)) == {"indexed"}

    (folder / "tool.exe").unlink()
    (folder / "policies" / "travel" / "hotels.md").write_text("# Hotels\n\nLimit 210 EUR.\n")
    output, status = run_ingest(folder, "--collection", "Finance policies")
    assert status == 0, output
    assert "Indexed 1 documents" in output and "2 unchanged, 1 new versions" in output
    hotels = Document.objects.get(path="policies/travel/hotels.md")
    assert hotels.current_version is not None and hotels.current_version.number == 2


def test_unknown_collections_are_refused_with_the_known_ones(
    finance_collection: Collection, tmp_path: Path
) -> None:
    with pytest.raises(CommandError, match=r"no collection 'Nope' \(known: Finance policies\)"):
        call_command("ingest", str(tmp_path), "--collection", "Nope", stdout=io.StringIO())
    output, _ = run_ingest(
        tmp_path, "--collection", "Plant manuals", "--create", "--department", "finance",
        "--no-wait",
    )  # fmt: skip
    assert "Creating collection 'Plant manuals' in Finance." in output
    assert Collection.objects.filter(name="Plant manuals").exists()
