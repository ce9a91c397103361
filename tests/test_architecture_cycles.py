"""No import cycles among the package's top-level units (docs/architecture.md).

A unit is a top-level module or sub-package of ``lfads_runs``. Every import
statement counts, at module level or inside a function; only imports under
``if TYPE_CHECKING:`` do not. The package root re-exports the API and is no unit:
nothing inside the package may import from it.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import lfads_runs

PACKAGE = Path(lfads_runs.__file__).parent


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module):
    """Every import node outside ``if TYPE_CHECKING:`` bodies (their ``else`` counts)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def import_graph(package: Path) -> tuple[dict[str, dict[str, list[str]]], list[str]]:
    """``(edges, root_imports)``: ``edges[a][b]`` lists ``file:line`` of every import of
    unit ``b`` by unit ``a``; ``root_imports`` the places importing the package root."""
    name = package.name
    units = {p.stem for p in package.glob("*.py") if p.name != "__init__.py"}
    units |= {p.parent.name for p in package.glob("*/__init__.py")}
    edges: dict[str, dict[str, list[str]]] = {}
    root_imports: list[str] = []
    for file in sorted(package.rglob("*.py")):
        rel = file.relative_to(package.parent)
        parts = list(rel.with_suffix("").parts)
        is_init = parts[-1] == "__init__"
        if is_init:
            parts = parts[:-1]
        if len(parts) < 2:
            continue  # the package root: it may import anything
        unit = parts[1]
        for node in _imports(ast.parse(file.read_text(encoding="utf-8"), str(file))):
            where = f"{rel.as_posix()}:{node.lineno}"
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                if node.level:
                    base = parts if is_init else parts[:-1]
                    base = base[: len(base) - node.level + 1]
                    module = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    module = node.module or ""
                if module == name:  # from lfads_runs import x: submodules only
                    targets = [f"{name}.{a.name}" for a in node.names]
                else:
                    targets = [module]
            for target in targets:
                tparts = target.split(".")
                if tparts[0] != name:
                    continue
                if len(tparts) == 1 or tparts[1] not in units:
                    root_imports.append(f"{where}: {target}")
                elif tparts[1] != unit:
                    edges.setdefault(unit, {}).setdefault(tparts[1], []).append(where)
    return edges, root_imports


def find_cycle(edges: dict[str, dict[str, list[str]]]) -> list[str] | None:
    """One cycle ``[a, b, ..., a]`` of the graph, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, {})):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def describe(cycle: list[str], edges: dict[str, dict[str, list[str]]]) -> str:
    lines = [" -> ".join(cycle)]
    for a, b in zip(cycle, cycle[1:], strict=False):
        lines.append(f"  {a} -> {b}: {', '.join(edges[a][b])}")
    return "\n".join(lines)


def test_no_import_cycles_among_top_level_units():
    edges, _ = import_graph(PACKAGE)
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle among lfads_runs units:\n" + describe(cycle, edges)


def test_nothing_imports_the_package_root():
    _, root_imports = import_graph(PACKAGE)
    assert not root_imports, "import the defining module, not the package root:\n" + "\n".join(
        root_imports
    )


def test_the_checker_finds_deferred_cycles_and_skips_type_checking(tmp_path: Path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "from .a import A\n",
        "a.py": """
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from .c import C
            def f():
                from .sub import helper
            """,
        "sub/__init__.py": "",
        "sub/helper.py": """
            def g():
                from ..a import f
            """,
        "c.py": "from . import a\n",
        "d.py": "from pkg import A\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(textwrap.dedent(text))
    edges, root_imports = import_graph(pkg)
    assert edges == {
        "a": {"sub": ["pkg/a.py:6"]},
        "sub": {"a": ["pkg/sub/helper.py:3"]},
        "c": {"a": ["pkg/c.py:1"]},
    }
    assert root_imports == ["pkg/d.py:1: pkg.A"]
    cycle = find_cycle(edges)
    assert cycle == ["a", "sub", "a"]
    assert describe(cycle, edges) == (
        "a -> sub -> a\n  a -> sub: pkg/a.py:6\n  sub -> a: pkg/sub/helper.py:3"
    )


def test_the_old_figures_path_still_imports_with_a_warning():
    import importlib
    import sys

    import pytest

    from lfads_runs.actions import figures

    sys.modules.pop("lfads_runs.run_figures", None)
    with pytest.warns(DeprecationWarning, match="lfads_runs.actions.figures"):
        old = importlib.import_module("lfads_runs.run_figures")
    assert old.save_alignment_figure is figures.save_alignment_figure
    assert set(old.__all__) == set(figures.__all__)


def test_the_collection_hands_its_yaml_loader_to_the_workers(monkeypatch):
    """The pipeline (below the collection) rebuilds a worker's run through _run_loader;
    test_run_subclass.test_yaml_run_class_is_imported_in_the_worker runs it end to end."""
    import pytest

    from lfads_runs import _run_loader, collection
    from lfads_runs.exceptions import LfadsRunsError

    assert _run_loader._loader is collection._load_run
    monkeypatch.setattr(_run_loader, "_loader", None)
    with pytest.raises(LfadsRunsError, match="registered no run loader"):
        _run_loader.load_run("x.yaml", "all", "param_abcdef")
