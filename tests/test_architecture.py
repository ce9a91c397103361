"""The import layering of the package, read from the source (nothing is imported).

Rule 1: the management layer (every module outside ``lfads_runs/engine`` and
``lfads_runs/plots``) imports neither of those two packages nor an optional
dependency when it is imported, so ``import lfads_runs`` needs the core
dependencies only. Imports inside functions are fine; so are those under
``if TYPE_CHECKING:``. tests/test_core_import.py checks the same promise at run
time, where it also catches an import that comes in through another package.

Rule 2: only ``lfads_runs/io`` imports h5py, at module level or inside a
function: every HDF5 file is read and written by one of its modules.

Each failure names the file and line of the offending import.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from _import_blocker import OPTIONAL_MODULES

PACKAGE = Path(__file__).resolve().parents[1] / "lfads_runs"
#: Sub-packages outside the management layer (loaded lazily, on first use).
LAZY = ("engine", "plots")
#: Call forms that import a module named by a string constant.
_IMPORT_CALLS = {"import_module", "__import__", "require"}


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str | None, level: int, importer: str, is_package: bool) -> str:
    """The absolute name of ``from <level dots><module> import ...`` inside ``importer``."""
    if level == 0:
        return module or ""
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module, importer: str, is_package: bool):
    """(line, imported module, at import time?) for every import of one module.

    ``from . import x`` yields the submodule ``<package>.x`` too, since x may be
    one; imports under ``if TYPE_CHECKING:`` are left out (never executed).
    """

    def visit(node: ast.AST, eager: bool) -> Iterator[tuple[int, str, bool]]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, eager
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node.module, node.level, importer, is_package)
            yield node.lineno, base, eager
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}", eager
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            value = getattr(node.args[0], "value", None) if node.args else None
            if name in _IMPORT_CALLS and isinstance(value, str):
                yield node.lineno, value, eager
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield from visit(child, eager)
            return
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            # decorators and default values run when the function is defined, the body later
            body = node.body if isinstance(node.body, list) else [node.body]
            for child in ast.iter_child_nodes(node):
                yield from visit(child, eager and child not in body)
            return
        for child in ast.iter_child_nodes(node):
            yield from visit(child, eager)

    yield from visit(tree, True)


def _within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def _sources(root: Path):
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        yield path, _module_name(path, root), path.name == "__init__.py", tree


def _violations(root: Path, skip: tuple[str, ...], banned: tuple[str, ...], eager_only: bool):
    """``file:line: imports X`` for each line importing a module in ``banned`` (one per line)."""
    out = []
    for path, name, is_package, tree in _sources(root):
        if _within(name, skip):
            continue
        lines = set()
        for line, target, eager in _imports(tree, name, is_package):
            if (eager or not eager_only) and _within(target, banned) and line not in lines:
                lines.add(line)
                out.append(f"{path.relative_to(root.parent)}:{line}: imports {target}")
    return out


def management_violations(root: Path = PACKAGE) -> list[str]:
    """Rule 1: management imports of the lazy packages or optional dependencies at import time."""
    lazy = tuple(f"{root.name}.{p}" for p in LAZY)
    found = _violations(root, lazy, lazy + tuple(OPTIONAL_MODULES), eager_only=True)
    return [f"{v} at module level" for v in found]


def h5py_violations(root: Path = PACKAGE) -> list[str]:
    """Rule 2: h5py imported (anywhere in a module) outside ``<package>/io``."""
    found = _violations(root, (f"{root.name}.io",), ("h5py",), eager_only=False)
    return [f"{v} outside io/" for v in found]


def test_management_imports_no_engine_plots_or_optional_dependency_at_module_level():
    found = management_violations()
    assert not found, "management modules import lazily-loaded code at import time:\n" + "\n".join(
        found
    )


def test_only_io_imports_h5py():
    found = h5py_violations()
    assert not found, "h5py imported outside lfads_runs/io:\n" + "\n".join(found)


# ---------------------------------------------------------------- the checker itself
def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
    for d in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
        (d / "__init__.py").touch()
    return root


@pytest.mark.parametrize(
    ("source", "bad"),
    [
        ("import torch\n", True),
        ("import matplotlib.pyplot as plt\n", True),
        ("from ray import tune\n", True),
        ("from .engine import train\n", True),
        ("from . import plots\n", True),
        ("from pkg.engine.model import LfadsModel\n", True),
        ("try:\n    import submitit\nexcept ImportError:\n    pass\n", True),
        ("class A:\n    import pynwb\n", True),
        ("import importlib\nM = importlib.import_module('torch')\n", True),
        ("def f():\n    import torch\n", False),
        ("async def f():\n    from .engine import train\n", False),
        ("f = lambda: __import__('torch')\n", False),
        ("import functools\n@functools.lru_cache(__import__('torch'))\ndef f():\n    pass\n", True),
        ("def f(x=__import__('matplotlib')):\n    pass\n", True),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import torch\n", False),
        ("import typing\nif typing.TYPE_CHECKING:\n    from .plots import x\n", False),
        ("from .engineering import x\nimport torchvision_like\n", False),
        ("import numpy\nfrom . import io\n", False),
    ],
)
def test_rule_one_checker(tmp_path, source, bad):
    root = _tree(tmp_path, {"mod.py": source, "engine/core.py": "import torch\n"})
    found = management_violations(root)
    assert bool(found) == bad, found
    if bad:
        assert found[0].startswith("pkg/mod.py:"), found


def test_rule_one_names_file_and_line_in_a_subpackage(tmp_path):
    root = _tree(tmp_path, {"sub/deep.py": '"""doc."""\n\nimport os\nfrom ..plots import fig\n'})
    assert management_violations(root) == ["pkg/sub/deep.py:4: imports pkg.plots at module level"]


def test_rule_two_checker(tmp_path):
    root = _tree(
        tmp_path,
        {
            "io/files.py": "import h5py\n",
            "data/load.py": "import numpy\n\n\ndef read():\n    import h5py.h5t\n",
            "engine/x.py": "from h5py import File\n",
            "ok.py": "from .io.files import read\n",
        },
    )
    assert h5py_violations(root) == [
        "pkg/data/load.py:5: imports h5py.h5t outside io/",
        "pkg/engine/x.py:1: imports h5py outside io/",
    ]
