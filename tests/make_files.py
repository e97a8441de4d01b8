"""Build small real documents of every supported type, and hostile ones, for tests.

Nothing binary is committed: every file is generated with the same libraries (or by hand,
byte by byte, for the malformed ones) so a reader can see exactly what each test feeds in.
"""

from __future__ import annotations

import csv
import email.message
import io
import struct
import textwrap
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL.Image import Image

FONT_LATIN = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
FONT_CJK = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"


def write_pdf(path: Path, pages: list[str], line_chars: int = 90) -> Path:
    """A valid PDF with a real text layer in Helvetica: each page's text is wrapped into
    lines, and a blank line in it starts a new paragraph."""
    objects: list[bytes] = []
    page_ids = [3 + 2 * i for i in range(len(pages))]
    font_id = 3 + 2 * len(pages)
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = " ".join(f"{pid} 0 R" for pid in page_ids)
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    for index, text in enumerate(pages):
        content_id = page_ids[index] + 1
        objects.append(
            (
                f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content_id} 0 R "
                f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>"
            ).encode()
        )
        lines: list[str] = []
        for paragraph in text.split("\n\n"):
            lines.extend(textwrap.wrap(paragraph, line_chars) or [""])
            lines.append("")
        shown = " ".join(f"({_pdf_escape(line)}) '" for line in lines[:-1])
        stream = f"BT /F1 11 Tf 14 TL 72 740 Td {shown} ET".encode("latin-1", "replace")
        objects.append(
            b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream"
        )
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    return _write_objects(path, objects)


def _pdf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _write_objects(path: Path, objects: list[bytes]) -> Path:
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    path.write_bytes(bytes(out))
    return path


def text_image(
    lines: list[str], font: str = FONT_LATIN, size: tuple[int, int] = (1700, 2200)
) -> Image:
    """A white page with black text, as a scanner would produce it (no text layer)."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    face = ImageFont.truetype(font, 44)
    for row, line in enumerate(lines):
        draw.text((150, 200 + 90 * row), line, font=face, fill=0)
    return image


def write_scanned_pdf(path: Path, pages: list[tuple[list[str], str]]) -> Path:
    """A PDF of page images only: every word on it has to come from OCR."""
    images = [text_image(lines, font) for lines, font in pages]
    images[0].save(path, format="PDF", save_all=True, append_images=images[1:], resolution=200)
    return path


def write_docx(
    path: Path,
    heading: str,
    paragraphs: list[str],
    subheading: str = "",
    table: list[list[str]] | None = None,
) -> Path:
    import docx

    document = docx.Document()
    document.add_heading(heading, level=1)
    if subheading:
        document.add_heading(subheading, level=2)
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    document.save(str(path))
    return path


def write_pptx(path: Path, slides: list[tuple[str, str]]) -> Path:
    import pptx

    presentation = pptx.Presentation()
    for title, body in slides:
        slide = presentation.slides.add_slide(presentation.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
    presentation.save(str(path))
    return path


def write_xlsx(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    import openpyxl

    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for name, rows in sheets.items():
        sheet = workbook.create_sheet(name)
        for row in rows:
            sheet.append(row)
    workbook.save(str(path))
    return path


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows(rows)
    return path


def write_eml(path: Path, subject: str, sender: str, body: str) -> Path:
    message = email.message.EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = "all-staff@example.com"
    message["Date"] = "Mon, 02 Nov 2026 10:00:00 +0000"
    message.set_content(body)
    path.write_bytes(bytes(message))
    return path


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


# --- hostile files ---------------------------------------------------------------------


def write_zip_bomb(path: Path, expanded_mb: int = 300) -> Path:
    """One member of zeros that compresses about 1000:1."""
    block = b"\0" * (1024 * 1024)
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
        archive.open("zeros.txt", "w", force_zip64=True) as member,
    ):
        for _ in range(expanded_mb):
            member.write(block)
    return path


BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n<!ENTITY lol "lol">\n'
    + "\n".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    + "\n]>\n"
)


def _replace_member(source: Path, target: Path, member: str, content: bytes) -> Path:
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w") as patched:
        for info in original.infolist():
            data = content if info.filename == member else original.read(info.filename)
            patched.writestr(info, data)
    return target


def write_docx_entity_bomb(path: Path, scratch: Path) -> Path:
    clean = write_docx(scratch / "clean.docx", "Bomb", ["placeholder"])
    body = (
        BILLION_LAUGHS
        + '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        "<w:body><w:p><w:r><w:t>&lol9;</w:t></w:r></w:p></w:body></w:document>"
    )
    return _replace_member(clean, path, "word/document.xml", body.encode())


def write_docx_external_entity(path: Path, scratch: Path, target: str) -> Path:
    """XXE: the document text is an entity that points at a local file or a URL."""
    clean = write_docx(scratch / "clean-xxe.docx", "XXE", ["placeholder"])
    body = (
        f'<?xml version="1.0"?>\n<!DOCTYPE d [<!ENTITY xxe SYSTEM "{target}">]>\n'
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        "<w:body><w:p><w:r><w:t>&xxe;</w:t></w:r></w:p></w:body></w:document>"
    )
    return _replace_member(clean, path, "word/document.xml", body.encode())


def write_xlsx_entity_bomb(path: Path, scratch: Path) -> Path:
    clean = write_xlsx(scratch / "clean.xlsx", {"Sheet": [["a", "b"], ["1", "2"]]})
    with zipfile.ZipFile(clean) as archive:
        sheet = archive.read("xl/worksheets/sheet1.xml").decode()
    body = sheet.split("?>", 1)[1] if sheet.startswith("<?xml") else sheet
    bombed = BILLION_LAUGHS + body.replace("<c ", "<c><is><t>&lol9;</t></is></c><c ", 1)
    return _replace_member(clean, path, "xl/worksheets/sheet1.xml", bombed.encode())


def write_html_with_entities(path: Path, target: str) -> Path:
    """An internal DTD with an external entity (XXE) and an entity bomb, used in the body."""
    dtd = BILLION_LAUGHS.replace(
        "<!DOCTYPE lolz [", f'<!DOCTYPE html [\n<!ENTITY xxe SYSTEM "{target}">'
    )
    path.write_text(
        dtd + "<html><body><h1>Notice</h1><p>Entity here: &xxe; and &lol9;</p>"
        "<p>The canteen opens at eight.</p></body></html>",
        encoding="utf-8",
    )
    return path


def write_circular_pdf(path: Path) -> Path:
    """The page tree is its own child, and the page's parent points back at it."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 /Parent 2 0 R >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
        b"<< /Length 4 0 R >>\nstream\nBT ET\nendstream",
    ]
    return _write_objects(path, objects)


def write_encrypted_pdf(path: Path, scratch: Path) -> Path:
    import pikepdf

    source = write_pdf(scratch / "plain.pdf", ["Confidential salary bands."])
    with pikepdf.open(source) as pdf:
        pdf.save(path, encryption=pikepdf.Encryption(owner="owner-pw", user="user-pw"))
    return path


def write_pixel_bomb_png(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A PNG whose header claims 10 gigapixels; its data is a few bytes of zeros."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    rows = zlib.compress(b"\0" * (width + 1) * 16)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )
    return path


def png_bytes(lines: list[str]) -> bytes:
    buffer = io.BytesIO()
    text_image(lines, size=(1400, 600)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_zip_with_legacy_names(path: Path, members: dict[str, bytes], encoding: str) -> Path:
    """A zip whose names are stored in a legacy code page without the UTF-8 flag, as
    Windows' built-in zip does on a Chinese system. Python's zipfile would write UTF-8, so
    ASCII placeholders of the same length are written and then patched into the bytes."""
    encoded = {name: name.encode(encoding) for name in members}
    placeholders = {name: f"{i:0{len(raw)}d}" for i, (name, raw) in enumerate(encoded.items())}
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(placeholders[name], content)
    data = path.read_bytes()
    for name, placeholder in placeholders.items():
        data = data.replace(placeholder.encode("ascii"), encoded[name])
    path.write_bytes(data)
    return path
