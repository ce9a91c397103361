"""The state of a run, derived from its files alone: ``Run.state()`` and ``lfads-runs status``.

:func:`derive_state` combines the done marker, the claim (:mod:`lfads_runs.claims`),
the state file (:mod:`lfads_runs.runstate`), the collection's queue file and, for a
submitted cluster job, the cluster, into one of :data:`~lfads_runs.runstate.RUN_STATES`.
Everything here reads files only, so it is safe while a queue is running.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .. import layout as L
from ..claims import STALE_AFTER_S, read_claim
from ..runstate import (
    DONE,
    FAILED,
    NOT_PREPARED,
    PREPARED,
    QUEUED,
    RUNNING,
    STALE,
    log_tail,
    read_state,
)
from .queuefile import queued_run_paths
from .slurm import submitted_job_alive

if TYPE_CHECKING:
    from ..collection import Run, RunCollection

__all__ = ["RunStatus", "collection_run_status", "derive_state", "run_status"]


# ---------------------------------------------------------------------------- derived state
def _inputs_present(paths: L.RunPaths, datasets: Iterable[str]) -> bool:
    return all(paths.input_file(ds).is_file() for ds in datasets)


def derive_state(
    paths: L.RunPaths,
    datasets: Iterable[str],
    *,
    queued: bool = False,
    stale_after: float = STALE_AFTER_S,
) -> tuple[str, str]:
    """``(state, reason)`` of one run from its files.

    Precedence: done marker > claim (running / stale) > queued (a live queue lists
    it, or a submitted job has not started) > failed (last attempt) > prepared /
    not prepared (whether every input file exists). ``reason`` says why in words.
    """
    if paths.done_marker.is_file():
        return DONE, ""
    claim = read_claim(paths.claim_file)
    if claim is not None:
        if claim.is_stale(stale_after):
            return STALE, f"claim left by {claim.describe()} (process gone or silent)"
        return RUNNING, f"{claim.describe()}"
    state = read_state(paths.state_file) or {}
    if state.get("state") == "submitted":
        job = state.get("job_id")
        if submitted_job_alive(state) is False:
            return FAILED, f"job {job} ended before the run started (see its job log)"
        return QUEUED, f"job {job}" if job else "submitted"
    if queued:
        return QUEUED, ""
    if state.get("state") == "failed":
        return FAILED, _failure_reason(state)
    prepared = _inputs_present(paths, datasets)
    reason = ""
    if state.get("state") == "interrupted":
        reason = f"interrupted in stage {state.get('stage')}; resumes from the latest checkpoint"
    return (PREPARED if prepared else NOT_PREPARED), reason


def _failure_reason(state: Mapping[str, Any]) -> str:
    stage = state.get("failed_stage") or state.get("stage") or "?"
    err = state.get("error") or ""
    code = state.get("exit_code")
    text = f"stage {stage}"
    if code not in (None, 0):
        text += f", exit code {code}"
    if err:
        text += f": {err.splitlines()[-1] if err.strip() else err}"
    return text


# ---------------------------------------------------------------------------- status rows
@attrs.frozen
class RunStatus:
    """One row of ``lfads-runs status``."""

    run_spec: str
    param_index: int
    param_hash: str
    path: str
    state: str  #: one of :data:`RUN_STATES`
    stage: str | None  #: current or last stage (prepare, train, posterior, dump, done)
    epochs: int | None  #: epochs in fitlog.csv
    step: int | None  #: global step of the last epoch
    best_valid_cost: float | None  #: lowest total validation cost so far
    learning_rate: float | None  #: current learning rate when the engine records it
    elapsed_s: float | None  #: seconds of the current or last attempt
    reason: str  #: why failed / stale / interrupted, in words
    host: str | None = None
    pid: int | None = None
    job_id: str | None = None
    exit_code: int | None = None
    log_tail: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        d["log_tail"] = list(self.log_tail)
        return d


def _fitlog_summary(path: Path) -> tuple[int | None, int | None, float | None]:
    from ..exceptions import LfadsRunsError
    from ..io.fitlog import read_fitlog_rows

    if not path.is_file():
        return None, None, None
    try:
        rows = read_fitlog_rows(path)
    except (LfadsRunsError, OSError):  # e.g. a line being appended right now
        return None, None, None
    if not rows:
        return 0, None, None
    valid = [r.total_valid for r in rows if r.total_valid is not None]
    return len(rows), rows[-1].step, (min(valid) if valid else None)


def _learning_rate(state: Mapping[str, Any]) -> float | None:
    progress = state.get("progress") or {}
    lr = progress.get("learning_rate") if isinstance(progress, dict) else None
    return float(lr) if isinstance(lr, int | float) else None


def _elapsed(state: Mapping[str, Any], live: bool) -> float | None:
    start = state.get("started_ts")
    if not isinstance(start, int | float):
        return None
    end = state.get("ended_ts")
    if isinstance(end, int | float) and not live:
        return round(float(end) - float(start), 1)
    return round(time.time() - float(start), 1)


def run_status(run: Run, *, queued: bool = False, tail: int = 0) -> RunStatus:
    """The status row of one run (files only; safe while it trains)."""
    paths = run.paths
    state_name, reason = derive_state(paths, run.dataset_names, queued=queued)
    record = read_state(paths.state_file) or {}
    epochs, step, best = _fitlog_summary(paths.file_fitlog)
    claim = read_claim(paths.claim_file)
    live = state_name == RUNNING
    return RunStatus(
        run_spec=run.name,
        param_index=run.param_index,
        param_hash=run.param_hash,
        path=str(paths.path),
        state=state_name,
        stage=record.get("stage"),
        epochs=epochs,
        step=step,
        best_valid_cost=best,
        learning_rate=_learning_rate(record),
        elapsed_s=_elapsed(record, live),
        reason=reason,
        host=(claim.host if claim else record.get("host")),
        pid=(claim.pid if claim else record.get("pid")),
        job_id=record.get("job_id"),
        exit_code=record.get("exit_code"),
        log_tail=tuple(log_tail(paths.log_file, tail)) if tail else (),
    )


def collection_run_status(
    rc: RunCollection, runs: Iterable[Run] | None = None, *, tail: int = 0
) -> list[RunStatus]:
    """Status rows of ``runs`` (default: every run, MATLAB linear order)."""
    queued = queued_run_paths(rc.layout)
    return [
        run_status(r, queued=str(r.paths.path) in queued, tail=tail)
        for r in (rc.all_runs if runs is None else runs)
    ]
