"""The state file of a run and the names of a run's lifecycle states.

The **state file** (``lfads_runs.state.json``, name from :mod:`lfads_runs.layout`) is
a machine-readable record of the last attempt (state, stage, host, pid, times, exit
code, failing stage, exception text, the last lines of ``lfads.out``), written
atomically by the pipeline and the executors. The **done marker** (``lfads.done``) is
written last, only after training, posterior sampling and ``model_params`` all
succeeded. :mod:`lfads_runs.claims` holds the claim file;
:func:`lfads_runs.executors.state.derive_state` combines the three into one of
:data:`RUN_STATES` (``Run.state()``, ``lfads-runs status``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._atomic import atomic_write_json
from ._jsonable import jsonable

__all__ = [
    "RUN_STATES",
    "NOT_PREPARED",
    "PREPARED",
    "QUEUED",
    "RUNNING",
    "DONE",
    "FAILED",
    "STALE",
    "LOG_TAIL_LINES",
    "read_state",
    "write_state",
    "log_tail",
]

NOT_PREPARED = "not prepared"
PREPARED = "prepared"
QUEUED = "queued"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
STALE = "stale"
#: Every state :func:`derive_state` can return.
RUN_STATES = (NOT_PREPARED, PREPARED, QUEUED, RUNNING, DONE, FAILED, STALE)

LOG_TAIL_LINES = 20


# ---------------------------------------------------------------------------- state file
def read_state(path: str | os.PathLike) -> dict[str, Any] | None:
    """The state record at ``path`` (None when missing or unreadable)."""
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) else None


def write_state(path: str | os.PathLike, record: Mapping[str, Any]) -> None:
    """Write a state record atomically (readers never see half a file)."""
    atomic_write_json(path, jsonable(record, non_finite_as_none=True))


def log_tail(
    path: str | os.PathLike, n: int = LOG_TAIL_LINES, max_bytes: int = 64_000
) -> list[str]:
    """The last ``n`` lines of a log file (empty when missing); reads at most ``max_bytes``."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError:
        return []
    text = data.decode("utf-8", errors="replace").replace("\r", "\n")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-n:]
