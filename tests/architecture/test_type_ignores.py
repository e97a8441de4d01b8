"""mypy runs strict on kb/, ingest/ and inference/ (pyproject.toml); where it is silenced, the
line says why, so the next engineer can tell a stub gap from a real problem."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IGNORE = re.compile(r"#\s*type:\s*ignore(?P<codes>\[[^\]]*\])?(?P<rest>.*)$")


def test_every_type_ignore_names_its_errors_and_its_reason() -> None:
    bare = []
    for folder in ("kb", "ingest", "inference"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                match = IGNORE.search(line)
                if match and not (match["codes"] and re.match(r"\s+#\s*\w", match["rest"])):
                    bare.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not bare, "\n".join(bare)
