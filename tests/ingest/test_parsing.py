"""Real `unstructured` partitioning of each supported type, with no network."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.parsing import ParseError, UnsupportedFileType, parse_file
from tests.make_files import write_docx, write_pdf


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


def test_markdown_keeps_headings_as_sections(tmp_path: Path) -> None:
    path = tmp_path / "stored-without-extension"
    path.write_text("# Policy\n\nIntro text here.\n\n## Hotels\n\nThe limit is 180 EUR.\n")
    elements = parse_file(path, "policy.md")
    hotel = next(e for e in elements if "180 EUR" in e.text)
    assert hotel.section == ("Policy", "Hotels")
    assert all("#" not in e.text for e in elements)


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_text("Deploys are allowed Monday to Thursday.\n\nFriday needs approval.\n")
    texts = [e.text for e in parse_file(path, "deploy.txt")]
    assert any("Monday to Thursday" in t for t in texts)


def test_pdf_text_layer_has_page_numbers(tmp_path: Path) -> None:
    path = write_pdf(tmp_path / "x", ["Page one talks about invoices.", "Page two covers hotels."])
    elements = parse_file(path, "report.pdf")
    pages = {e.page for e in elements if "hotels" in e.text}
    assert pages == {2}
    assert {e.page for e in elements if "invoices" in e.text} == {1}


def test_docx(tmp_path: Path) -> None:
    path = write_docx(tmp_path / "x", "Onboarding", ["New hires get a laptop on day one."])
    elements = parse_file(path, "onboarding.docx")
    laptop = next(e for e in elements if "laptop" in e.text)
    assert laptop.section == ("Onboarding",)


def test_unsupported_type_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(b"MZ\x90\x00")
    with pytest.raises(UnsupportedFileType, match=r"\.exe are not supported; supported types"):
        parse_file(path, "setup.exe")


def test_corrupt_pdf_fails_with_reason(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    with pytest.raises(ParseError, match=r"report\.pdf"):
        parse_file(path, "report.pdf")


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
    elements = parse_file(path, "results.txt")
    assert any("Revenue grew" in e.text for e in elements)
    assert tokenize._get_nlp().meta["version"] == "3.8.0"
    assert no_network == []
