"""How a worker process rebuilds a run from its collection's YAML file.

A queue's worker gets a JSON :class:`~lfads_runs.pipeline.RunTask`, not the ``Run``;
when the run's inputs are missing it needs the ``Run`` (with the YAML's
``run_class`` hooks) to prepare them. The pipeline sits below
:mod:`lfads_runs.collection` (``Run.train`` starts the queues), so it cannot import
the collection: :mod:`lfads_runs.collection` registers its loader here when it is
imported, which every process importing ``lfads_runs`` does through the package root.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .exceptions import LfadsRunsError

__all__ = ["load_run", "set_run_loader"]

#: ``(yaml_path, run_spec, param_hash) -> Run``
_loader: Callable[[str, str, str], Any] | None = None


def set_run_loader(loader: Callable[[str, str, str], Any]) -> None:
    """Register the function that builds a run from a YAML file (done by the collection)."""
    global _loader
    _loader = loader


def load_run(config: str, run_spec: str, param_hash: str) -> Any:
    """The run ``run_spec`` x ``param_hash`` of the collection in the YAML file ``config``."""
    if _loader is None:  # only when lfads_runs.collection was never imported
        raise LfadsRunsError(
            f"cannot load {config}: lfads_runs.collection registered no run loader "
            "(import lfads_runs first)"
        )
    return _loader(config, run_spec, param_hash)
