"""Turn one file into structured text elements with `unstructured`.

Runs inside the isolated parser process (ingest/sandbox.py), never in a web or worker process.
PDFs use their text layer (`fast`); pages without one are rendered and OCR'd with Tesseract
(`ocr_only`, English and Simplified Chinese by default). `hi_res` needs layout models that
cannot be fetched offline. Tables keep their rows and cells, so the chunker can keep them whole.
Nothing here touches the network: see packaging/README.md for the spaCy model.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import tempfile
from contextlib import closing
from dataclasses import asdict, dataclass, field
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from ingest.errors import EncryptedFile, NoTextFound, ParseError, TooLarge, UnsafeFile
from ingest.formats import SUPPORTED, Container, FileKind, check_content, kind_for
from ingest.safety import ArchiveLimits, check_before_parse
from ingest.sentences import split_sentences

# Element categories that carry no content worth retrieving.
_SKIPPED_CATEGORIES = {"PageBreak", "PageNumber"}
_SENTENCE_END = tuple(".!?;:。！？；：，,")
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f"
# Tesseract's chi_sim model separates every character with a space.
_SPACE_BETWEEN_CJK = re.compile(f"(?<=[{_CJK}]) +(?=[{_CJK}])")
# A page with less text than this in its text layer is treated as scanned.
_MIN_TEXT_LAYER_CHARS = 16


@dataclass(frozen=True)
class ParseOptions:
    ocr_languages: tuple[str, ...] = ("eng", "chi_sim")
    ocr_dpi: int = 300
    max_pages: int = 2000
    max_image_pixels: int = 60_000_000
    archive_limits: ArchiveLimits = field(default_factory=ArchiveLimits)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ParseOptions:
        return cls(
            ocr_languages=tuple(data["ocr_languages"]),
            ocr_dpi=int(data["ocr_dpi"]),
            max_pages=int(data["max_pages"]),
            max_image_pixels=int(data["max_image_pixels"]),
            archive_limits=ArchiveLimits(**data["archive_limits"]),
        )


@dataclass(frozen=True)
class ParsedElement:
    text: str
    category: str
    page: int | None
    section: tuple[str, ...] = ()
    # Table cells, one tuple per row, header row first; empty for everything but tables.
    rows: tuple[tuple[str, ...], ...] = ()

    @property
    def is_table(self) -> bool:
        return bool(self.rows)


@dataclass(frozen=True)
class ParsedDocument:
    elements: list[ParsedElement]
    page_count: int | None = None
    # A better title than the file name when the format names one (mail subject, first heading).
    title: str = ""
    ocr_pages: tuple[int, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "elements": [
                {
                    "text": e.text,
                    "category": e.category,
                    "page": e.page,
                    "section": list(e.section),
                    "rows": [list(row) for row in e.rows],
                }
                for e in self.elements
            ],
            "page_count": self.page_count,
            "title": self.title,
            "ocr_pages": list(self.ocr_pages),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ParsedDocument:
        return cls(
            elements=[
                ParsedElement(
                    text=str(e["text"]),
                    category=str(e["category"]),
                    page=e["page"] if isinstance(e["page"], int) else None,
                    section=tuple(str(s) for s in e["section"]),
                    rows=tuple(tuple(str(c) for c in row) for row in e["rows"]),
                )
                for e in data["elements"]
            ],
            page_count=data["page_count"] if isinstance(data["page_count"], int) else None,
            title=str(data["title"]),
            ocr_pages=tuple(int(p) for p in data["ocr_pages"]),
        )


def normalize_ocr_text(text: str) -> str:
    return _SPACE_BETWEEN_CJK.sub("", text).strip()


def looks_like_heading(text: str) -> bool:
    """unstructured guesses titles from layout; reject guesses that read like sentences.

    Its heuristics are tuned for English and call whole Chinese paragraphs titles, which
    would turn body text into section names.
    """
    if len(text) > 120 or text.endswith(_SENTENCE_END):
        return False
    cjk = len(re.findall(f"[{_CJK}]", text))
    return cjk <= 40 and len(text.split()) <= 16


def table_rows(html: str) -> tuple[tuple[str, ...], ...]:
    """Rows of the first table in unstructured's `text_as_html`, cells stripped."""
    import lxml.html

    root = lxml.html.fromstring(html)
    rows = []
    for tr in root.iter("tr"):
        cells = tuple(
            " ".join(cell.text_content().split()) for cell in tr if cell.tag in ("td", "th")
        )
        if any(cells):
            rows.append(cells)
    return tuple(rows)


_WORD = re.compile(r"\w+(?:['’-]\w+)*|[^\w\s]")


def _fast_sentences(text: str) -> list[str]:
    return split_sentences(text)


def _fast_words(text: str) -> list[str]:
    return _WORD.findall(text)


def _configure_unstructured() -> None:
    """Make unstructured's element classification cheap enough to keep up with the embedder.

    To tell a title from narrative text, unstructured (0.27) counts sentences and words of
    every paragraph by running spaCy's full pipeline (tagger and dependency parser), about
    7 ms per paragraph on one CPU core: a third of what embedding the same text costs. Counting
    does not need a parser: the regex splitter the chunker uses (English, Chinese, Japanese)
    and a word regex give the same counts. spaCy's tagger stays for `pos_tag`, which
    unstructured only asks for on short one-sentence candidates, and its parser (used for
    nothing else) is switched off. Pinned unstructured version; tests/ingest/test_parsing.py
    checks that the replacement is in place.
    """
    from unstructured.nlp import tokenize
    from unstructured.partition import text_type

    text_type.sent_tokenize = _fast_sentences  # type: ignore[attr-defined]  # a faster splitter, same result
    text_type.word_tokenize = _fast_words  # type: ignore[attr-defined,assignment]  # replacing the library's tokenizer function: its speed, same result
    nlp = tokenize._get_nlp()
    if "parser" in nlp.pipe_names:
        nlp.disable_pipe("parser")


def _partition(path: Path, kind: FileKind, filename: str, **kwargs: Any) -> list[Any]:
    from unstructured.partition.auto import partition

    _configure_unstructured()
    # Languages given, not detected: detection (langdetect) costs a fifth of the parse and
    # only fills metadata this product does not use.
    kwargs.setdefault("languages", ["eng"])
    try:
        return list(
            partition(
                filename=str(path),
                content_type=kind.content_type,
                metadata_filename=filename,
                **kwargs,
            )
        )
    except MemoryError:
        raise  # the sandbox reports it as the memory limit
    except Exception as exc:
        raise ParseError(
            f"{filename!r} could not be read as {kind.label}: {type(exc).__name__}: {exc}"
        ) from exc


def _to_elements(
    raw: list[Any],
    kind: FileKind,
    root_section: tuple[str, ...] = (),
    page: int | None = None,
    headings: bool = True,
    ocr: bool = False,
) -> list[ParsedElement]:
    """Map unstructured elements to ours, keeping a breadcrumb of headings as the section.

    With `headings=False` every element stays under `root_section` (mail bodies, where the
    "titles" unstructured finds are greetings and signatures).
    """
    # Headings from markup (DOCX styles, <h2>, ##, slide titles) are trusted; in plain text,
    # PDFs and OCR they are layout guesses and must also read like a heading.
    heading_from_markup = kind.extension in {".docx", ".pptx", ".html", ".htm", ".md", ".markdown"}
    parsed: list[ParsedElement] = []
    section: list[str] = []
    current_page: int | None = None
    for element in raw:
        category = str(getattr(element, "category", "Text"))
        if category in _SKIPPED_CATEGORIES:
            continue
        metadata = getattr(element, "metadata", None)
        text = str(element).replace("\u00a0", " ").strip()
        if ocr:
            text = normalize_ocr_text(text)
        element_page = page if page is not None else getattr(metadata, "page_number", None)
        if not isinstance(element_page, int):
            element_page = None
        if kind.extension == ".pptx" and element_page != current_page:
            section = []  # each slide starts afresh; its title becomes the section
        current_page = element_page
        html = getattr(metadata, "text_as_html", None)
        if category == "Table" and html:
            rows = table_rows(str(html))
            sheet = getattr(metadata, "page_name", None)
            table_section = (*root_section, *section, *([str(sheet)] if sheet else []))
            if rows:
                parsed.append(
                    ParsedElement(text, "Table", element_page, tuple(table_section), rows)
                )
            continue
        if not text:
            continue
        depth = getattr(metadata, "category_depth", None)
        level = depth if isinstance(depth, int) and depth >= 0 else 0
        # In slides only the title shape is markup (depth 0); deeper "titles" are guesses.
        trusted = heading_from_markup and not (kind.extension == ".pptx" and level > 0)
        if category == "Title" and headings and (trusted or looks_like_heading(text)):
            section = [*section[:level], text]
        elif category == "Title":
            category = "NarrativeText"
        parsed.append(ParsedElement(text, category, element_page, (*root_section, *section)))
    return parsed


def _parse_pdf(path: Path, filename: str, kind: FileKind, options: ParseOptions) -> ParsedDocument:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        if getattr(exc, "err_code", None) == pdfium.raw.FPDF_ERR_PASSWORD:
            raise EncryptedFile(
                f"{filename!r} is password-protected; remove the password and upload it again"
            ) from exc
        raise ParseError(f"{filename!r} could not be read as a PDF: {exc}") from exc
    with closing(pdf):
        page_count = len(pdf)
        if page_count > options.max_pages:
            raise TooLarge(f"{filename!r} has {page_count} pages; the limit is {options.max_pages}")
        scanned = []
        for number in range(page_count):
            try:
                layer = pdf[number].get_textpage().get_text_range()
            except pdfium.PdfiumError as exc:
                raise ParseError(
                    f"{filename!r} is damaged: page {number + 1} cannot be read ({exc})"
                ) from exc
            if len("".join(layer.split())) < _MIN_TEXT_LAYER_CHARS:
                scanned.append(number + 1)
        elements: list[ParsedElement] = []
        if len(scanned) < page_count:
            elements = _to_elements(_partition(path, kind, filename, strategy="fast"), kind)
            elements = [e for e in elements if e.page not in scanned]
        for number in scanned:
            elements.extend(_ocr_pdf_page(pdf, number, filename, options))
    elements.sort(key=lambda e: e.page or 0)  # stable: keeps reading order within a page
    return ParsedDocument(elements, page_count=page_count, ocr_pages=tuple(scanned))


def _ocr_pdf_page(
    pdf: Any, number: int, filename: str, options: ParseOptions
) -> list[ParsedElement]:
    page = pdf[number - 1]
    width, height = page.get_size()  # points
    scale = options.ocr_dpi / 72
    # A page with an absurd media box must not render into a pixel bomb: shrink to the limit.
    pixels = width * scale * height * scale
    if pixels > options.max_image_pixels:
        scale *= (options.max_image_pixels / pixels) ** 0.5
    image = page.render(scale=scale, grayscale=True).to_pil()
    with tempfile.TemporaryDirectory(prefix="kb-ocr-") as folder:
        png = Path(folder) / f"page-{number}.png"
        image.save(png)
        raw = _ocr_image(png, filename, options)
    return _to_elements(raw, SUPPORTED[".png"], page=number, ocr=True)


@functools.lru_cache(maxsize=8)
def ocr_unavailable_reason(languages: tuple[str, ...]) -> str | None:
    """Why OCR in LANGUAGES cannot run on this machine (Tesseract or its language data is a
    Debian package, not a Python one), or None when it can."""
    tesseract = shutil.which("tesseract")
    if tesseract is None:
        return (
            "Tesseract is not installed on this server (Debian: apt-get install tesseract-ocr "
            "tesseract-ocr-chi-sim)"
        )
    try:
        # A fixed argv: the binary found on PATH, no input of anyone's.
        listed = subprocess.run(  # noqa: S603
            [tesseract, "--list-langs"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.split()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"Tesseract does not run ({type(exc).__name__}: {exc})"
    missing = [language for language in languages if language not in listed]
    if missing:
        packages = " ".join(f"tesseract-ocr-{m.replace('_', '-')}" for m in missing)
        return (
            f"Tesseract has no language data for {', '.join(missing)} (Debian: apt-get install "
            f"{packages})"
        )
    return None


def _ocr_image(path: Path, filename: str, options: ParseOptions) -> list[Any]:
    from unstructured.partition.image import partition_image

    reason = ocr_unavailable_reason(options.ocr_languages)
    if reason is not None:
        raise ParseError(f"{filename!r} needs OCR (it has no text layer), but {reason}")
    try:
        return list(
            partition_image(
                filename=str(path),
                strategy="ocr_only",
                languages=list(options.ocr_languages),
                metadata_filename=filename,
            )
        )
    except MemoryError:
        raise
    except Exception as exc:
        raise ParseError(f"{filename!r}: OCR failed: {type(exc).__name__}: {exc}") from exc


def _parse_image(
    path: Path, filename: str, kind: FileKind, options: ParseOptions
) -> ParsedDocument:
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = options.max_image_pixels
    try:
        with Image.open(path) as image:  # reads the header only
            width, height = image.size
            frames = int(getattr(image, "n_frames", 1))
    except Image.DecompressionBombError as exc:
        raise UnsafeFile(f"{filename!r} is an image too large to process safely: {exc}") from exc
    except Exception as exc:
        raise ParseError(f"{filename!r} could not be read as {kind.label}: {exc}") from exc
    if width * height * frames > options.max_image_pixels:
        raise UnsafeFile(
            f"{filename!r} is {width}x{height} pixels"
            f"{f' in {frames} frames' if frames > 1 else ''}; the limit is "
            f"{options.max_image_pixels:,} pixels"
        )
    elements = _to_elements(_ocr_image(path, filename, options), kind, ocr=True)
    return ParsedDocument(elements, page_count=frames, ocr_pages=tuple(range(1, frames + 1)))


def _email_header(path: Path) -> tuple[str, str]:
    """(subject, header line) of a message, so sender, date and subject are searchable."""
    with path.open("rb") as stream:
        message = BytesParser(policy=policy.default).parse(stream, headersonly=True)
    subject = " ".join(str(message.get("subject", "")).split())
    parts = [
        f"{name}: {' '.join(str(message[name]).split())}"
        for name in ("From", "To", "Cc", "Date", "Subject")
        if message.get(name)
    ]
    return subject, "\n".join(parts)


def parse_file(path: Path, filename: str, options: ParseOptions | None = None) -> ParsedDocument:
    """Partition `path` (stored under an opaque name) as the type of the original `filename`."""
    options = options or ParseOptions()
    kind = kind_for(filename)
    with path.open("rb") as stream:
        head = stream.read(8192)
    if not head:
        raise NoTextFound(f"{filename!r} is empty")
    check_content(filename, head)
    check_before_parse(path, filename, kind, options.archive_limits)
    if kind.container is Container.ARCHIVE:
        raise ParseError(f"{filename!r} is an archive; its files are ingested one by one")

    if kind.container is Container.PDF:
        document = _parse_pdf(path, filename, kind, options)
    elif kind.container is Container.IMAGE:
        document = _parse_image(path, filename, kind, options)
    elif kind.extension == ".eml":
        subject, header = _email_header(path)
        root = (subject,) if subject else ()
        raw = _partition(path, kind, filename, strategy="fast")
        body = _to_elements(raw, kind, root, headings=False)
        header_element = ParsedElement(header, "EmailHeader", None, root) if header else None
        elements = ([header_element] if header_element else []) + body
        document = ParsedDocument(elements, title=subject)
    else:
        raw = _partition(path, kind, filename, strategy="fast")
        elements = _to_elements(raw, kind)
        pages = {e.page for e in elements if e.page is not None}
        document = ParsedDocument(elements, page_count=max(pages) if kind.paged and pages else None)

    if not any(e.text or e.rows for e in document.elements):
        raise NoTextFound(f"{filename!r} contains no extractable text")
    if not document.title:
        first = document.elements[0]
        if first.category == "Title" and first.section and first.section[-1] == first.text:
            document = ParsedDocument(
                document.elements, document.page_count, first.text[:300], document.ocr_pages
            )
    return document


# --- entry points of the isolated parser process (ingest/sandbox.py) -------------------


def warm_up() -> None:
    """Import every partitioner once, so the first file of each type is not charged seconds."""
    import unstructured.partition.csv
    import unstructured.partition.docx
    import unstructured.partition.email
    import unstructured.partition.html
    import unstructured.partition.image
    import unstructured.partition.md
    import unstructured.partition.pdf
    import unstructured.partition.pptx
    import unstructured.partition.text
    import unstructured.partition.xlsx  # noqa: F401


def parse_request(request: dict[str, Any]) -> dict[str, Any]:
    options = ParseOptions.from_json(request["options"])
    return parse_file(Path(request["path"]), str(request["filename"]), options).to_json()
