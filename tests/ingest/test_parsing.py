"""Real `unstructured` partitioning of every supported type, with no network."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.errors import ContentMismatch, EncryptedFile, ParseError, UnsupportedFileType
from ingest.parsing import (
    ParsedDocument,
    ParsedElement,
    looks_like_heading,
    ocr_unavailable_reason,
    parse_file,
)
from tests.make_files import (
    FONT_CJK,
    FONT_LATIN,
    write_csv,
    write_docx,
    write_eml,
    write_encrypted_pdf,
    write_pdf,
    write_pptx,
    write_scanned_pdf,
    write_xlsx,
)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Refuse and record every connection that is not to loopback."""
    attempts: list[object] = []
    real_connect = socket.socket.connect

    def guarded_connect(self: socket.socket, address: object) -> None:
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and (host.startswith("127.") or host in ("::1", "localhost")):
            return real_connect(self, address)  # type: ignore[arg-type]
        attempts.append(address)
        raise OSError(f"test guard: outbound connection to {address!r} refused")

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    yield attempts


def find(document: ParsedDocument, needle: str) -> ParsedElement:
    return next(e for e in document.elements if needle in e.text)


def test_markdown_keeps_headings_as_sections(tmp_path: Path) -> None:
    path = tmp_path / "stored-without-extension"
    path.write_text("# Policy\n\nIntro text here.\n\n## Hotels\n\nThe limit is 180 EUR.\n")
    document = parse_file(path, "policy.md")
    assert find(document, "180 EUR").section == ("Policy", "Hotels")
    assert all("#" not in e.text for e in document.elements)
    assert document.title == "Policy"


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_text("Deploys are allowed Monday to Thursday.\n\nFriday needs approval.\n")
    document = parse_file(path, "deploy.txt")
    assert find(document, "Monday to Thursday").page is None


def test_pdf_text_layer_has_page_numbers(tmp_path: Path) -> None:
    path = write_pdf(tmp_path / "x", ["Page one talks about invoices.", "Page two covers hotels."])
    document = parse_file(path, "report.pdf")
    assert find(document, "hotels").page == 2
    assert find(document, "invoices").page == 1
    assert document.page_count == 2 and document.ocr_pages == ()


def test_scanned_pdf_pages_are_ocrd_in_english_and_chinese(tmp_path: Path) -> None:
    path = write_scanned_pdf(
        tmp_path / "scan",
        [
            (["Supplier contract, page one.", "Delivery within 14 days."], FONT_LATIN),
            (["差旅报销规定", "出差结束后三十天内提交报销。"], FONT_CJK),
        ],
    )
    document = parse_file(path, "contract.pdf")
    assert document.ocr_pages == (1, 2)
    assert find(document, "14 days").page == 1
    chinese = find(document, "报销")
    assert chinese.page == 2
    # Tesseract's chi_sim output puts a space between characters; they are joined again.
    assert "三十天内提交报销" in chinese.text


def test_docx_sections_and_table_rows(tmp_path: Path) -> None:
    path = write_docx(
        tmp_path / "x",
        "Handbook",
        ["New hires get a laptop on day one."],
        subheading="Equipment",
        table=[["Item", "Budget"], ["Laptop", "1500 EUR"], ["Phone", "600 EUR"]],
    )
    document = parse_file(path, "onboarding.docx")
    assert find(document, "laptop").section == ("Handbook", "Equipment")
    table = next(e for e in document.elements if e.is_table)
    assert table.rows == (("Item", "Budget"), ("Laptop", "1500 EUR"), ("Phone", "600 EUR"))


def test_pptx_slides_are_pages_and_titles_are_sections(tmp_path: Path) -> None:
    path = write_pptx(
        tmp_path / "x", [("Quarterly review", "Revenue grew 4 percent."), ("Next steps", "Hire.")]
    )
    document = parse_file(path, "review.pptx")
    revenue = find(document, "Revenue grew")
    assert (revenue.page, revenue.section) == (1, ("Quarterly review",))
    assert find(document, "Hire").section == ("Next steps",)
    assert document.page_count == 2


def test_xlsx_sheets_stay_tables(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "x",
        {
            "Rates": [["City", "Hotel limit"], ["Munich", 180], ["Shanghai", 160]],
            "Contacts": [["Name", "Role"], ["Li Wei", "CFO"]],
        },
    )
    document = parse_file(path, "rates.xlsx")
    rates, contacts = (e for e in document.elements if e.is_table)
    assert rates.rows[0] == ("City", "Hotel limit") and ("Munich", "180") in rates.rows
    assert (rates.page, rates.section) == (1, ("Rates",))
    assert (contacts.page, contacts.section) == (2, ("Contacts",))


def test_csv_is_one_table(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x", [["Code", "Meaning"], ["A1", "Approved"], ["R2", "Rejected"]])
    (table,) = parse_file(path, "codes.csv").elements
    assert table.rows == (("Code", "Meaning"), ("A1", "Approved"), ("R2", "Rejected"))


def test_html_headings_and_tables(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_text(
        "<html><head><title>Intranet</title></head><body><h1>IT policy</h1>"
        "<p>Passwords rotate every 90 days.</p><h2>VPN</h2><p>Use the VPN outside.</p>"
        "<table><tr><th>System</th><th>Owner</th></tr><tr><td>ERP</td><td>Finance</td></tr>"
        "</table><script>alert('x')</script></body></html>"
    )
    document = parse_file(path, "it.html")
    assert find(document, "VPN outside").section == ("IT policy", "VPN")
    assert next(e for e in document.elements if e.is_table).rows[1] == ("ERP", "Finance")
    assert not any("alert" in e.text for e in document.elements)


def test_email_subject_is_the_title_and_headers_are_searchable(tmp_path: Path) -> None:
    path = write_eml(
        tmp_path / "x", "Budget freeze", "cfo@example.com", "Dear all,\n\nThe budget is frozen.\n"
    )
    document = parse_file(path, "freeze.eml")
    assert document.title == "Budget freeze"
    header = document.elements[0]
    assert "From: cfo@example.com" in header.text and "Subject: Budget freeze" in header.text
    assert find(document, "budget is frozen").section == ("Budget freeze",)


def test_chinese_paragraphs_are_not_mistaken_for_headings(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_text(
        "差旅报销规定\n\n员工出差结束后，应在三十天内提交报销申请。酒店标准为每晚六百元。\n",
        encoding="utf-8",
    )
    document = parse_file(path, "travel.txt")
    body = find(document, "三十天")
    assert body.category == "NarrativeText"
    assert body.section == ("差旅报销规定",)
    assert looks_like_heading("第二条 交通") and not looks_like_heading(body.text)


def test_unsupported_type_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(b"MZ\x90\x00")
    with pytest.raises(UnsupportedFileType, match=r"\.exe are not supported; supported types"):
        parse_file(path, "setup.exe")


def test_disguised_files_are_refused(tmp_path: Path) -> None:
    html = tmp_path / "h"
    html.write_text("<html><body>not a picture</body></html>")
    with pytest.raises(ContentMismatch, match="named as PNG image"):
        parse_file(html, "photo.png")
    binary = write_docx(tmp_path / "d", "A Word file renamed to text", ["Body."])
    with pytest.raises(ContentMismatch, match="binary data"):
        parse_file(binary, "notes.txt")


def test_corrupt_and_encrypted_pdfs_fail_with_reasons(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    with pytest.raises(ParseError, match=r"report\.pdf"):
        parse_file(path, "report.pdf")
    encrypted = write_encrypted_pdf(tmp_path / "e", tmp_path)
    with pytest.raises(EncryptedFile, match="password-protected"):
        parse_file(encrypted, "salaries.pdf")


def test_parsed_documents_survive_the_json_round_trip(tmp_path: Path) -> None:
    path = write_docx(tmp_path / "x", "T", ["Body."], table=[["a", "b"], ["1", "2"]])
    document = parse_file(path, "t.docx")
    assert ParsedDocument.from_json(document.to_json()) == document


def test_partitioning_makes_no_outbound_connection(
    tmp_path: Path, no_network: list[object]
) -> None:
    # Force unstructured to load its spaCy model now, under the guard, instead of reusing a
    # model another test loaded: this is the step that downloads from GitHub when the model
    # is missing.
    from unstructured.nlp import tokenize

    tokenize._get_nlp.cache_clear()
    tokenize._process_cached.cache_clear()
    path = tmp_path / "x"
    path.write_text(
        "Quarterly results\n\nRevenue grew by four percent in the third quarter. "
        "Costs were flat compared to last year."
    )
    document = parse_file(path, "results.txt")
    assert find(document, "Revenue grew")
    assert tokenize._get_nlp().meta["version"] == "3.8.0"
    assert no_network == []


def test_unstructured_counts_sentences_without_spacys_parser(tmp_path: Path) -> None:
    """The speed-up in parsing._configure_unstructured patches a pinned unstructured; if an
    upgrade moves the functions, this fails instead of parsing silently slowing down 4x."""
    from unstructured.nlp import tokenize
    from unstructured.partition import text_type

    source = tmp_path / "notes.txt"
    source.write_text("Quarterly Results\n\nRevenue grew in every region. Costs fell by a tenth.\n")
    parse_file(source, "notes.txt")

    split = text_type.sent_tokenize  # type: ignore[attr-defined]
    assert split("First one. Second one! 第三句。第四句？") == [
        "First one.",
        "Second one!",
        "第三句。",
        "第四句？",
    ]
    assert "parser" not in tokenize._get_nlp().pipe_names
    # Classification still works on the cheap counts.
    assert text_type.is_possible_title("Quarterly Results")
    assert not text_type.is_possible_title("Revenue grew in every region. Costs fell by a tenth.")
    assert text_type.is_possible_narrative_text("Revenue grew in every region. Costs fell.")


def test_a_scanned_pdf_without_tesseract_fails_alone_with_the_package_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scanned = write_scanned_pdf(tmp_path / "scan", [(["Delivery within 14 days."], FONT_LATIN)])
    text = tmp_path / "deploy.txt"
    text.write_text("Deployments freeze on Fridays.\n", encoding="utf-8")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no tesseract on it
    ocr_unavailable_reason.cache_clear()
    try:
        with pytest.raises(ParseError, match=r"needs OCR .* apt-get install tesseract-ocr"):
            parse_file(scanned, "contract.pdf")
        # A file with text needs no OCR and is parsed as usual.
        assert "Fridays" in parse_file(text, "deploy.txt").elements[0].text
    finally:
        ocr_unavailable_reason.cache_clear()


def test_ocr_in_a_language_without_data_names_the_missing_package() -> None:
    reason = ocr_unavailable_reason(("eng", "xx_test"))
    assert reason is not None and "tesseract-ocr-xx-test" in reason
    assert ocr_unavailable_reason(("eng", "chi_sim")) is None  # the default languages work
