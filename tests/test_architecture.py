"""Architecture rules (issue 19), read from the source with ``ast`` (nothing is imported).

Every import counts: module level, inside functions and methods, under ``TYPE_CHECKING``.

* no import cycle among the modules of ``engine/``;
* nothing under ``engine/`` imports ``evaluation``;
* serving code (``engine/`` except ``engine/train/``) never imports ``engine.train``, but for
  the CLI entry modules listed in :data:`LAZY_TRAIN_ENTRY_POINTS`, which start an offline job
  from inside the command's function;
* no source file of ``engine/``, ``ingest/`` or ``evaluation/`` is over :data:`MAX_LINES` lines.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 500
SIZE_CHECKED = ("engine", "ingest", "evaluation")
# CLI entry module -> the offline module its command imports lazily (inside a function).
LAZY_TRAIN_ENTRY_POINTS: dict[str, str] = {
    "engine.__main__": "engine.train.fit",  # python -m engine fit
    "engine.looks.__main__": "engine.train.datagen.looks_mining",  # python -m engine.looks mine
}


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # what it names: a module, or a name inside one
    line: int
    lazy: bool  # inside a function (runs when called, not at import)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path, package: str) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted((root / package).rglob("*.py"))}


def _walk(node: ast.AST, in_function: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(node):
        inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
        yield child, inner
        yield from _walk(child, inner)


def imports(path: Path, name: str) -> list[Import]:
    """Every import statement of a module, as absolute dotted names."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: list[Import] = []
    for node, lazy in _walk(tree):
        if isinstance(node, ast.Import):
            out += [Import(name, a.name, node.lineno, lazy) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            out.append(Import(name, module, node.lineno, lazy))
            out += [Import(name, f"{module}.{a.name}", node.lineno, lazy) for a in node.names]
    return out


def resolve(target: str, known: set[str]) -> str | None:
    """The module of ``known`` that ``target`` names (its longest known prefix)."""
    parts = target.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


def import_graph(root: Path, package: str = "engine") -> dict[str, dict[str, Import]]:
    """module -> {imported module of the same package: the first import of it}."""
    mods = modules(root, package)
    known = set(mods)
    graph: dict[str, dict[str, Import]] = {m: {} for m in mods}
    for m, path in mods.items():
        for imp in imports(path, m):
            target = resolve(imp.target, known)
            if target is not None and target != m:
                graph[m].setdefault(target, imp)
    return graph


def cycles(graph: dict[str, dict[str, Import]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def describe(graph: dict[str, dict[str, Import]], component: list[str]) -> str:
    members = set(component)
    edges = [
        f"  {m} -> {t} (line {imp.line}{', in a function' if imp.lazy else ''})"
        for m in component
        for t, imp in sorted(graph[m].items())
        if t in members
    ]
    return "cycle among " + ", ".join(component) + ":\n" + "\n".join(edges)


def _listed(found: list[Import]) -> list[str]:
    """``module:line imports target``, one line per import statement (its shortest target:
    ``from a.b import c`` records both ``a.b`` and ``a.b.c``)."""
    first: dict[tuple[str, int], str] = {}
    for imp in found:
        key = (imp.source, imp.line)
        if key not in first or len(imp.target) < len(first[key]):
            first[key] = imp.target
    return [f"{m}:{line} imports {target}" for (m, line), target in sorted(first.items())]


def _is_training(target: str) -> bool:
    return target == "engine.train" or target.startswith("engine.train.")


def _allowed(imp: Import) -> bool:
    """The lazy import of an entry point's offline module (``from engine.train import fit``
    names ``engine.train`` too)."""
    allowed = LAZY_TRAIN_ENTRY_POINTS.get(imp.source)
    if allowed is None or not imp.lazy:
        return False
    parts = allowed.split(".")
    parents = {".".join(parts[:i]) for i in range(2, len(parts))}
    return imp.target in parents or imp.target == allowed or imp.target.startswith(allowed + ".")


def train_imports(root: Path) -> list[str]:
    """Imports of engine.train from serving code that the entry-point rule does not allow."""
    found = [
        imp
        for m, path in modules(root, "engine").items()
        if not _is_training(m)
        for imp in imports(path, m)
        if _is_training(imp.target) and not _allowed(imp)
    ]
    # `from engine.train import fit` is listed as engine.train.fit, the module it names
    named = {(imp.source, imp.line) for imp in found if imp.target != "engine.train"}
    return _listed(
        [
            imp
            for imp in found
            if imp.target != "engine.train" or (imp.source, imp.line) not in named
        ]
    )


def evaluation_imports(root: Path) -> list[str]:
    return _listed(
        [
            imp
            for m, path in modules(root, "engine").items()
            for imp in imports(path, m)
            if imp.target == "evaluation" or imp.target.startswith("evaluation.")
        ]
    )


def long_files(root: Path, limit: int = MAX_LINES) -> list[str]:
    out = []
    for folder in SIZE_CHECKED:
        for path in sorted((root / folder).rglob("*.py")):
            n = len(path.read_text(encoding="utf-8").splitlines())
            if n > limit:
                out.append(f"{path.relative_to(root)}: {n} lines")
    return out


# --------------------------------------------------------------------------- the rules


def test_no_import_cycles_in_engine() -> None:
    graph = import_graph(ROOT)
    found = cycles(graph)
    assert not found, "\n".join(describe(graph, c) for c in found)


def test_engine_never_imports_evaluation() -> None:
    bad = evaluation_imports(ROOT)
    assert not bad, "engine/ must not import evaluation:\n" + "\n".join(bad)


def test_serving_code_never_imports_training() -> None:
    bad = train_imports(ROOT)
    assert not bad, "serving code must not import engine.train:\n" + "\n".join(bad)


def test_source_files_are_at_most_500_lines() -> None:
    bad = long_files(ROOT)
    assert not bad, f"split these into cohesive modules (at most {MAX_LINES} lines):\n" + (
        "\n".join(bad)
    )


# --------------------------------------------------------------------------- the checker itself


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_checker_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "engine/__init__.py": "",
            "engine/__main__.py": "def main():\n    from engine.train.fit import main\n",
            "engine/a.py": "def f():\n    from engine.b import g\n",
            "engine/b.py": "from . import c\n",
            "engine/c.py": "import engine.a\nimport evaluation.metrics\n",
            "engine/d.py": "from engine.train import fit\n",
            "engine/train/__init__.py": "",
            "engine/train/fit.py": "import engine.a\n",
            "ingest/big.py": "x = 1\n" * (MAX_LINES + 1),
            "evaluation/__init__.py": "",
        },
    )
    graph = import_graph(tmp_path)
    assert cycles(graph) == [["engine.a", "engine.b", "engine.c"]]
    assert graph["engine.a"]["engine.b"].lazy
    assert evaluation_imports(tmp_path) == ["engine.c:2 imports evaluation.metrics"]
    assert train_imports(tmp_path) == ["engine.d:1 imports engine.train.fit"]
    assert long_files(tmp_path) == [f"ingest/big.py: {MAX_LINES + 1} lines"]


@pytest.mark.parametrize(
    "source",
    [
        "from engine.train.fit import main\n",  # at import time, not lazily
        "def main():\n    from engine.train.joint import train\n",  # not the allowed module
    ],
)
def test_entry_point_allowance_is_narrow(tmp_path: Path, source: str) -> None:
    _write(tmp_path, {"engine/__init__.py": "", "engine/__main__.py": source})
    assert train_imports(tmp_path)
