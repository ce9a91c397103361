"""Run Python code in a fresh interpreter where some modules cannot be imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterable

#: Optional dependencies (the extras' import names): the management layer imports none
#: of them when it is imported (test_core_import.py at run time, test_architecture.py
#: in the source).
OPTIONAL_MODULES = ("torch", "matplotlib", "submitit", "ray", "pynwb", "scipy")


def block_imports(names: Iterable[str]) -> str:
    """Source that makes importing any of the top-level packages ``names`` raise ImportError."""
    return textwrap.dedent(f"""
        import sys, importlib.abc
        BLOCKED = {sorted(set(names))!r}
        for name in BLOCKED:
            sys.modules.pop(name, None)
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"{{name}} is blocked in this test")
                return None
        sys.meta_path.insert(0, Block())
    """)


def run_python(prelude: str, code: str, timeout: float) -> subprocess.CompletedProcess:
    """``python -c prelude + code`` (``code`` dedented), output captured as text."""
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
