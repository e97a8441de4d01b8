"""The layering rules, checked over the import graph of the source itself (docs/architecture.md).

- `ingest/` and `inference/` are plain Python (no Django, nothing of `kb/`), so they run and
  are tested without a database.
- `kb/library` (documents and ingestion) imports nothing from the front ends or from the app
  that answers: it announces events (kb/library/events.py) instead.
- The portal and the REST API are two doors onto kb/answering: neither imports the other.
- No import loops, counting every import (inside functions and under TYPE_CHECKING too), so
  a loop cannot hide in a function; an import inside a function is for start-up order only
  (Django's `ready`) or says why on the line above (`# deferred: ...`).
- No view module over 250 lines: a view parses, calls one act, renders.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = ("kb", "ingest", "inference")
MAX_VIEW_MODULE_LINES = 250
# What a module imports that makes it a view module (Django views or DRF views).
VIEW_MARKERS = (
    "django.contrib.auth.decorators",
    "django.contrib.auth.views",
    "django.views",
    "django.shortcuts",
    "rest_framework.generics",
    "rest_framework.views",
    "kb.api.base",
)


def source_files(folder: str) -> Iterator[Path]:
    for path in sorted((ROOT / folder).rglob("*.py")):
        if "migrations" not in path.parts:
            yield path


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, package: str | None = None) -> set[str]:
    """Every module `path` imports, absolute names, wherever in the file the import is.
    `package`: the one relative imports start from (by default, the file's own)."""
    if package is None:
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parents = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parents, base] if base else parents)
            names.add(base)
            # `from kb.api import views` imports the module kb.api.views.
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def imported_modules(folder: str) -> dict[str, set[str]]:
    """Each .py file under `folder` (migrations aside) and the modules it imports."""
    return {str(p.relative_to(ROOT)): imports_of(p) for p in source_files(folder)}


def first_party_graph() -> dict[str, set[str]]:
    """Module -> the first-party modules it imports (a name resolved to the module defining
    it: `from kb.api.webhooks import dispatch` is an edge to kb.api.webhooks)."""
    paths = {module_name(p): p for top in FIRST_PARTY for p in source_files(top)}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        edges = set()
        for imported in imports_of(path):
            while imported and imported not in paths:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                edges.add(imported)
        graph[name] = edges
    return graph


def import_loops(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    loops: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        loops.append(sorted(component))
    return loops


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("ingest", ("django", "rest_framework", "celery", "kb")),
        ("inference", ("django", "rest_framework", "celery", "kb")),
        ("kb/library", ("kb.api", "kb.portal", "kb.answering")),
        ("kb/answering", ("kb.api", "kb.portal")),
        ("kb/api", ("kb.portal",)),
        ("kb/portal", ("kb.api",)),
    ],
)
def test_a_layer_imports_nothing_above_or_beside_it(
    folder: str, forbidden: tuple[str, ...]
) -> None:
    breaches = {
        f"{path} imports {name}"
        for path, names in imported_modules(folder).items()
        for name in names
        if any(name == top or name.startswith(f"{top}.") for top in forbidden)
    }
    assert not breaches, sorted(breaches)


def test_no_import_loops() -> None:
    assert not import_loops(first_party_graph())


def test_the_loop_check_finds_a_loop() -> None:
    # Without this the rule above could pass by finding nothing at all.
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_loops(graph) == [["a", "b", "c"]]
    assert import_loops({"a": {"b"}, "b": set()}) == []


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from kb.api.webhooks import x\n")
    assert {"kb.api.webhooks", "kb.api.webhooks.x"} <= imports_of(module, package="")


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


def test_imports_inside_functions_say_why() -> None:
    """A first-party import inside a function is allowed in an AppConfig's `ready` (models
    are loaded only then) or with `# deferred: <why>` on the line above it."""
    unexplained = []
    for top in FIRST_PARTY:
        for path in source_files(top):
            lines = path.read_text(encoding="utf-8").splitlines()
            tree = ast.parse("\n".join(lines))
            for function in ast.walk(tree):
                if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                if function.name == "ready":
                    continue
                for node in ast.walk(function):
                    if isinstance(node, ast.ImportFrom):
                        names = [node.module or ""]
                    elif isinstance(node, ast.Import):
                        names = [alias.name for alias in node.names]
                    else:
                        continue
                    if not any(n.split(".")[0] in FIRST_PARTY for n in names):
                        continue
                    above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
                    same = lines[node.lineno - 1]
                    if "# deferred:" not in above and "# deferred:" not in same:
                        unexplained.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not unexplained, unexplained


def view_modules() -> Iterator[Path]:
    for path in source_files("kb"):
        if any(
            name == marker or name.startswith(f"{marker}.")
            for name in imports_of(path)
            for marker in VIEW_MARKERS
        ):
            yield path


def test_view_modules_are_thin() -> None:
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in view_modules()}
    assert "kb/portal/views.py" in sizes and "kb/api/views.py" in sizes  # the markers work
    too_long = {path: lines for path, lines in sizes.items() if lines > MAX_VIEW_MODULE_LINES}
    assert not too_long, too_long
