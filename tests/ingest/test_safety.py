"""Zip bombs and XML declarations are refused before anything is expanded or parsed."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from ingest.errors import TooLarge, UnsafeFile
from ingest.formats import check_content
from ingest.safety import (
    ArchiveLimits,
    archive_listing,
    archive_members,
    check_office_xml,
    clean_member_path,
)
from tests.make_files import (
    write_docx,
    write_docx_entity_bomb,
    write_docx_external_entity,
    write_xlsx,
    write_xlsx_entity_bomb,
    write_zip,
    write_zip_bomb,
    write_zip_with_legacy_names,
)

LIMITS = ArchiveLimits()


def test_a_zip_bomb_is_refused_from_its_directory(tmp_path: Path) -> None:
    bomb = write_zip_bomb(tmp_path / "bomb.zip", expanded_mb=64)
    assert bomb.stat().st_size < 1024 * 1024
    with pytest.raises(UnsafeFile, match=r"zip bomb: 'zeros.txt' expands \d+x"):
        archive_members(bomb, "bomb.zip", LIMITS)


def test_an_office_file_that_is_a_zip_bomb_is_refused(tmp_path: Path) -> None:
    clean = write_docx(tmp_path / "c.docx", "T", ["x"])
    bombed = tmp_path / "b.docx"
    with (
        zipfile.ZipFile(clean) as source,
        zipfile.ZipFile(bombed, "w", zipfile.ZIP_DEFLATED) as out,
    ):
        for info in source.infolist():
            out.writestr(info.filename, source.read(info.filename))
        out.writestr("word/media/padding.bin", b"\0" * 32 * 1024 * 1024)
    with pytest.raises(UnsafeFile, match="zip bomb"):
        check_office_xml(bombed, "b.docx", LIMITS)


def test_entry_count_and_total_size_limits(tmp_path: Path) -> None:
    many = write_zip(tmp_path / "many.zip", {f"f{i}.txt": b"x" for i in range(30)})
    with pytest.raises(TooLarge, match="30 entries; the limit is 20"):
        archive_members(many, "many.zip", ArchiveLimits(max_entries=20))
    big = write_zip(tmp_path / "big.zip", {"a.txt": b"a" * 4096, "b.txt": b"b" * 4096})
    with pytest.raises(TooLarge, match="expands to"):
        archive_members(big, "big.zip", ArchiveLimits(max_total_bytes=5000))


@pytest.mark.parametrize(
    "make",
    [
        lambda tmp: write_docx_entity_bomb(tmp / "bomb.docx", tmp),
        lambda tmp: write_xlsx_entity_bomb(tmp / "bomb.xlsx", tmp),
        lambda tmp: write_docx_external_entity(tmp / "xxe.docx", tmp, "file:///etc/passwd"),
    ],
    ids=["docx-billion-laughs", "xlsx-billion-laughs", "docx-external-entity"],
)
def test_office_xml_with_a_dtd_is_refused(tmp_path: Path, make: object) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(UnsafeFile, match="XML document type declaration"):
        check_office_xml(path, path.name, LIMITS)


def test_clean_office_files_pass(tmp_path: Path) -> None:
    check_office_xml(write_docx(tmp_path / "a.docx", "T", ["x"]), "a.docx", LIMITS)
    check_office_xml(write_xlsx(tmp_path / "a.xlsx", {"S": [["a"]]}), "a.xlsx", LIMITS)


def test_archive_paths_are_cleaned_and_junk_skipped(tmp_path: Path) -> None:
    archive = write_zip(
        tmp_path / "a.zip",
        {
            "policies/travel/hotels.md": b"# Hotels",
            "../../etc/evil.txt": b"x",
            "/abs/path.txt": b"y",
            "__MACOSX/policies/._hotels.md": b"junk",
            "policies/Thumbs.db": b"junk",
        },
    )
    listing = archive_listing(archive, "a.zip", LIMITS)
    assert [m.path for m in listing.members] == ["policies/travel/hotels.md"]
    # Every file entry left out is named with its reason; none is kept under a cleaned name.
    assert dict(listing.skipped) == {
        "../../etc/evil.txt": "refused: its path climbs out of the archive (..)",
        "/abs/path.txt": "refused: its path is absolute",
        "__MACOSX/policies/._hotels.md": "skipped: operating-system metadata, not a document",
        "policies/Thumbs.db": "skipped: operating-system metadata, not a document",
    }
    assert [m.path for m in archive_members(archive, "a.zip", LIMITS)] == [
        "policies/travel/hotels.md"
    ]
    assert clean_member_path("C:\\Users\\x\\report.pdf") == "Users/x/report.pdf"
    assert clean_member_path("a/../b") is None


def test_gbk_names_from_chinese_windows_are_recovered(tmp_path: Path) -> None:
    path = write_zip_with_legacy_names(tmp_path / "gbk.zip", {"财务/报销.txt": b"x"}, "gbk")
    assert [m.path for m in archive_members(path, "gbk.zip", LIMITS)] == ["财务/报销.txt"]


def test_content_sniffing_by_type(tmp_path: Path) -> None:
    assert check_content("a.pdf", b"%PDF-1.7\n").extension == ".pdf"
    assert check_content("a.txt", "纯文本".encode("utf-16")).extension == ".txt"
    assert check_content("a.png", b"\x89PNG\r\n\x1a\n....").extension == ".png"
