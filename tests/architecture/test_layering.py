"""The layering rules that hold today, checked over the import graph of the source itself.

`ingest/` and `inference/` are plain Python (no Django, nothing of `kb/`), so they run and are
tested without a database; `kb/library` (documents and ingestion) imports nothing from the
front ends (`kb/api`, `kb/portal`): it announces events (kb/library/events.py) instead.
Every import counts, also one inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(folder: str) -> dict[str, set[str]]:
    """Each .py file under `folder` (migrations aside) and the modules it imports."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("ingest", ("django", "rest_framework", "celery", "kb")),
        ("inference", ("django", "rest_framework", "celery", "kb")),
        ("kb/library", ("kb.api", "kb.portal")),
    ],
)
def test_a_layer_imports_nothing_above_it(folder: str, forbidden: tuple[str, ...]) -> None:
    breaches = {
        f"{path} imports {name}"
        for path, names in imported_modules(folder).items()
        for name in names
        if any(name == top or name.startswith(f"{top}.") for top in forbidden)
    }
    assert not breaches, sorted(breaches)


def test_only_management_commands_import_management_commands() -> None:
    # A view that needs what a command computes gets it from a module both import.
    breaches = {
        f"{path} imports {name}"
        for path, names in imported_modules("kb").items()
        if "/management/commands/" not in path
        for name in names
        if ".management.commands." in name
    }
    assert not breaches, sorted(breaches)


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    # The rule above would be empty if the walk missed nested imports: prove it does not.
    tree = ast.parse("def f():\n    from kb.api.webhooks import x\n")
    nested = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert nested == ["kb.api.webhooks"]
