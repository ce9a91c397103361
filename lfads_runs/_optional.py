"""Lazy access to optional dependencies (the extras)."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from .exceptions import MissingDependencyError

_EXTRA_OF = {
    "torch": "torch",
    "matplotlib": "plot",
    "pynwb": "nwb",
    "submitit": "slurm",
    "ray": "ray",
    "scipy": "scipy",
    "crc32c": "fast",
    "mkdocs": "docs",
}


def extras_present() -> dict[str, bool]:
    """Each optional extra of the package -> whether its module can be imported."""
    return {extra: has_module(module) for module, extra in _EXTRA_OF.items()}


def has_module(name: str) -> bool:
    """True when ``name`` can be imported, without importing it."""
    return importlib.util.find_spec(name) is not None


def require(name: str, feature: str) -> ModuleType:
    """Import an optional dependency or raise one clear error naming the extra."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        extra = _EXTRA_OF.get(name.split(".")[0], name)
        msg = (
            f"{feature} needs the optional dependency {name!r}; "
            f"install it with: pip install 'lfads_runs[{extra}]'"
        )
        raise MissingDependencyError(msg) from exc
