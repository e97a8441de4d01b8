"""A generated, mixed corpus of company documents for the ingestion benchmark.

Deterministic for a seed. Every format the product ingests appears, in proportions like a
shared drive's (many PDFs and Word files, some slides, sheets and mail), with sections,
tables and some Chinese documents. Scanned pages are left out on purpose: OCR costs seconds
per page and would measure Tesseract, not the pipeline; its throughput is reported apart.
"""

from __future__ import annotations

import email.message
import random
from collections.abc import Callable
from pathlib import Path

from tests.make_files import write_csv, write_pdf, write_xlsx

WORDS = (
    "the of and to in is that for it as was with be by on not this are or from at which "
    "have an they were all can will one has more if about when there their what other "
    "time some these so two may first then do any like into only new also after use over "
    "such because each most through well between should under must during before same "
    "supplier invoice order payment approval budget contract delivery inspection safety "
    "maintenance pressure valve pump boiler line shift operator manager department report "
    "quarter revenue cost audit policy employee training access account password network "
    "server backup incident customer quality sample batch warehouse shipment route vehicle "
    "permit hazard procedure record signature deadline review committee plant equipment "
    "spare part calibration temperature tolerance measurement limit threshold exception "
    "travel hotel expense receipt reimbursement meeting agenda decision action owner risk"
).split()
TOPICS = [
    "Procurement", "Travel", "Maintenance", "Safety", "Security", "Payroll", "Quality",
    "Logistics", "Finance", "Training", "Facilities", "Compliance",
]  # fmt: skip
HANZI = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下"
    "过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都"
    "两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重"
    "新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想"
    "已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知"
)


def _sentence(rng: random.Random) -> str:
    words = rng.choices(WORDS, k=rng.randint(10, 24))
    return " ".join(words).capitalize() + rng.choice([".", ".", ".", ".", "?", "!"])


def _paragraph(rng: random.Random) -> str:
    return " ".join(_sentence(rng) for _ in range(rng.randint(3, 6)))


def _chinese_paragraph(rng: random.Random) -> str:
    return "".join(
        "".join(rng.choices(HANZI, k=rng.randint(12, 30))) + rng.choice("。。。！？")
        for _ in range(rng.randint(3, 6))
    )


def _sections(rng: random.Random, count: int, chinese: bool = False) -> list[tuple[str, list[str]]]:
    make = _chinese_paragraph if chinese else _paragraph
    return [
        (
            f"{rng.choice(TOPICS)} {rng.choice(WORDS)} {i + 1}",
            [make(rng) for _ in range(rng.randint(2, 5))],
        )
        for i in range(count)
    ]


def _rows(rng: random.Random, count: int) -> list[list[str]]:
    header = ["Item", "Owner", "Quantity", "Status"]
    return [header] + [
        [f"{rng.choice(WORDS)} {rng.choice(WORDS)}", rng.choice(TOPICS), str(rng.randint(1, 999)),
         rng.choice(["open", "closed", "pending review"])]
        for _ in range(count)
    ]  # fmt: skip


def markdown(rng: random.Random, path: Path, chinese: bool = False) -> Path:
    sections = _sections(rng, rng.randint(3, 8), chinese)
    body = "\n\n".join(f"## {title}\n\n" + "\n\n".join(paras) for title, paras in sections)
    path.write_text(f"# {rng.choice(TOPICS)} guideline\n\n{body}\n", encoding="utf-8")
    return path


def text(rng: random.Random, path: Path, chinese: bool = False) -> Path:
    sections = _sections(rng, rng.randint(2, 6), chinese)
    body = "\n\n".join(f"{title}\n\n" + "\n\n".join(paras) for title, paras in sections)
    path.write_text(body + "\n", encoding="utf-8")
    return path


def html(rng: random.Random, path: Path) -> Path:
    sections = _sections(rng, rng.randint(3, 7))
    parts = [f"<h1>{rng.choice(TOPICS)} portal page</h1>"]
    for title, paras in sections:
        parts.append(f"<h2>{title}</h2>" + "".join(f"<p>{p}</p>" for p in paras))
    rows = _rows(rng, rng.randint(3, 10))
    parts.append(
        "<table>"
        + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
        + "</table>"
    )
    path.write_text(f"<html><body>{''.join(parts)}</body></html>", encoding="utf-8")
    return path


def docx(rng: random.Random, path: Path) -> Path:
    import docx as python_docx

    document = python_docx.Document()
    document.add_heading(f"{rng.choice(TOPICS)} handbook", level=1)
    for title, paras in _sections(rng, rng.randint(3, 9)):
        document.add_heading(title, level=2)
        for paragraph in paras:
            document.add_paragraph(paragraph)
    if rng.random() < 0.5:
        rows = _rows(rng, rng.randint(4, 12))
        grid = document.add_table(rows=len(rows), cols=len(rows[0]))
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    document.save(str(path))
    return path


def pdf(rng: random.Random, path: Path) -> Path:
    pages = [
        "\n\n".join([f"{rng.choice(TOPICS)} report"] + [_paragraph(rng) for _ in range(3)])
        for _ in range(rng.randint(2, 6))
    ]
    return write_pdf(path, pages)


def pptx(rng: random.Random, path: Path) -> Path:
    import pptx as python_pptx

    presentation = python_pptx.Presentation()
    for title, paras in _sections(rng, rng.randint(4, 10)):
        slide = presentation.slides.add_slide(presentation.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = "\n".join(_sentence(rng) for _ in range(len(paras) + 1))
    presentation.save(str(path))
    return path


def xlsx(rng: random.Random, path: Path) -> Path:
    sheets: dict[str, list[list[object]]] = {
        f"{rng.choice(TOPICS)} {i + 1}": [list(row) for row in _rows(rng, rng.randint(15, 60))]
        for i in range(2)
    }
    return write_xlsx(path, sheets)


def csv_table(rng: random.Random, path: Path) -> Path:
    return write_csv(path, _rows(rng, rng.randint(20, 80)))


def mail(rng: random.Random, path: Path) -> Path:
    message = email.message.EmailMessage()
    message["Subject"] = f"{rng.choice(TOPICS)}: {_sentence(rng)[:60]}"
    message["From"] = f"{rng.choice(WORDS)}@example.com"
    message["To"] = "all-staff@example.com"
    message["Date"] = "Mon, 02 Nov 2026 10:00:00 +0000"
    message.set_content("\n\n".join(_paragraph(rng) for _ in range(rng.randint(2, 6))))
    path.write_bytes(bytes(message))
    return path


Writer = Callable[[random.Random, Path], Path]
# (extension, writer, share of the corpus)
MIX: list[tuple[str, Writer, int]] = [
    (".pdf", pdf, 35),
    (".docx", docx, 30),
    (".md", markdown, 20),
    (".txt", text, 15),
    (".html", html, 25),
    (".pptx", pptx, 15),
    (".xlsx", xlsx, 15),
    (".csv", csv_table, 10),
    (".eml", mail, 15),
    (".zh.md", lambda rng, path: markdown(rng, path, chinese=True), 10),
    (".zh.txt", lambda rng, path: text(rng, path, chinese=True), 10),
]


def generate(folder: Path, documents: int, seed: int = 7) -> list[Path]:
    """Write `documents` files into `folder` (in department sub-folders); return their paths."""
    rng = random.Random(seed)
    weights = [share for _, _, share in MIX]
    paths = []
    for number in range(documents):
        extension, writer, _ = rng.choices(MIX, weights=weights)[0]
        target = folder / rng.choice(TOPICS).lower() / f"doc-{number:04d}{extension}"
        target.parent.mkdir(parents=True, exist_ok=True)
        paths.append(writer(rng, target))
    return paths
