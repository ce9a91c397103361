"""Claims, state files and the state of a run, derived from files alone.

Three files in a run folder (names from :mod:`lfads_runs.layout`) carry the state:

- the **claim** (``lfads_runs.claim``): created exclusively by the process that
  trains the run, holding its host, pid and start time as JSON; its modification
  time is a heartbeat. Two queues on one collection therefore never train the same
  run. A claim whose pid is dead (same host) or whose heartbeat is old is *stale*
  and may be broken by the next process that wants the run.
- the **state file** (``lfads_runs.state.json``): a machine-readable record of the
  last attempt (state, stage, host, pid, times, exit code, failing stage,
  exception text, the last lines of ``lfads.out``), written atomically.
- the **done marker** (``lfads.done``): written last, only after training,
  posterior sampling and ``model_params`` all succeeded.

:func:`derive_state` combines them into one of :data:`RUN_STATES`. Everything
here reads files only (except :class:`ClaimHandle`), so it is safe while a queue
is running.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from . import layout as L
from ._atomic import LockTimeout, atomic_write_json, file_lock, fsync_dir
from ._jsonable import jsonable
from ._procs import pid_alive
from ._tempfiles import make_temp, sweep_stale_temps

if TYPE_CHECKING:
    from .collection import Run, RunCollection

__all__ = [
    "RUN_STATES",
    "NOT_PREPARED",
    "PREPARED",
    "QUEUED",
    "RUNNING",
    "DONE",
    "FAILED",
    "STALE",
    "HEARTBEAT_S",
    "STALE_AFTER_S",
    "Claim",
    "ClaimHandle",
    "read_claim",
    "acquire_claim",
    "break_stale_claim",
    "read_state",
    "write_state",
    "log_tail",
    "derive_state",
    "RunStatus",
    "run_status",
    "collection_run_status",
    "pid_alive",
    "submitted_job_alive",
    "hostname",
    "now_iso",
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

#: Seconds between heartbeats of a claim's owner (the claim file's mtime is touched).
HEARTBEAT_S = 15.0
#: A claim whose heartbeat is older than this is stale (on any host).
STALE_AFTER_S = 600.0

LOG_TAIL_LINES = 20


def hostname() -> str:
    return socket.gethostname()


def now_iso(t: float | None = None) -> str:
    """Local time with offset, to the second (``2024-05-01T12:00:00+02:00``)."""
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))


# ---------------------------------------------------------------------------- claims
@attrs.frozen
class Claim:
    """The content of a claim file plus its heartbeat (the file's mtime)."""

    host: str
    pid: int
    started: float  #: seconds since the epoch
    token: str  #: unique per claim, so an owner never removes someone else's claim
    heartbeat: float  #: mtime of the claim file
    queue_host: str | None = None  #: the queue (scheduler) that launched the owner
    queue_pid: int | None = None
    executor: str | None = None
    job_id: str | None = None
    path: str = ""

    def is_stale(self, stale_after: float = STALE_AFTER_S, now: float | None = None) -> bool:
        """Dead pid on this host, or a heartbeat older than ``stale_after`` seconds."""
        now = time.time() if now is None else now
        if self.host == hostname() and not pid_alive(self.pid):
            return True
        return now - self.heartbeat > stale_after

    def queue_alive(self) -> bool | None:
        """Whether the queue that launched the owner still runs (None: unknown or none)."""
        if self.queue_pid is None or self.queue_host != hostname():
            return None
        return pid_alive(self.queue_pid)

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} since {now_iso(self.started)}"

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def read_claim(path: str | os.PathLike) -> Claim | None:
    """The claim at ``path``, or None when there is none.

    A claim file that cannot be parsed (written by something else) is reported as
    a claim by pid 0, which is stale on this host, so it can be broken.
    """
    path = Path(path)
    try:
        st = path.stat()
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        d = json.loads(text)
        return Claim(
            host=str(d["host"]),
            pid=int(d["pid"]),
            started=float(d["started"]),
            token=str(d["token"]),
            heartbeat=st.st_mtime,
            queue_host=d.get("queue_host"),
            queue_pid=d.get("queue_pid"),
            executor=d.get("executor"),
            job_id=d.get("job_id"),
            path=str(path),
        )
    except (ValueError, KeyError, TypeError):
        return Claim(hostname(), 0, st.st_mtime, "", st.st_mtime, path=str(path))


class ClaimHandle:
    """A claim held by this process; touches the heartbeat in a daemon thread.

    Use as a context manager or call :meth:`release`. Releasing removes the claim
    file only while it still holds this handle's token.
    """

    def __init__(self, paths: L.RunPaths, claim: Claim, heartbeat_s: float = HEARTBEAT_S):
        self.paths = paths
        self.claim = claim
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, args=(heartbeat_s,), name="lfads-claim-heartbeat", daemon=True
        )
        self._thread.start()

    def _beat(self, every: float) -> None:
        while not self._stop.wait(every):
            with contextlib.suppress(OSError):
                os.utime(self.paths.claim_file)

    def release(self) -> None:
        self._stop.set()
        try:
            with file_lock(self.paths.claim_lock_file, timeout=10):
                current = read_claim(self.paths.claim_file)
                if current is not None and current.token == self.claim.token:
                    self.paths.claim_file.unlink()
                    fsync_dir(self.paths.path)
        except (OSError, LockTimeout):
            pass

    def __enter__(self) -> ClaimHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _create_exclusive(dst: Path, content: str) -> bool:
    """Publish ``content`` at ``dst`` only if ``dst`` does not exist (atomic, complete)."""
    sweep_stale_temps(dst)
    tmp = make_temp(dst)
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, dst)  # fails if dst exists: the claim appears complete or not at all
        except FileExistsError:
            return False
        fsync_dir(dst.parent)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def break_stale_claim(paths: L.RunPaths, stale_after: float = STALE_AFTER_S) -> Claim | None:
    """Remove the claim of ``paths`` if it is stale; return the claim removed (or None).

    Done under the claim lock and re-checked there, so two processes breaking the
    same stale claim cannot remove a fresh claim made in between.
    """
    try:
        with file_lock(paths.claim_lock_file, timeout=10):
            current = read_claim(paths.claim_file)
            if current is None or not current.is_stale(stale_after):
                return None
            paths.claim_file.unlink()
            fsync_dir(paths.path)
            return current
    except (FileNotFoundError, LockTimeout):
        return None


def acquire_claim(
    paths: L.RunPaths,
    *,
    queue_host: str | None = None,
    queue_pid: int | None = None,
    executor: str | None = None,
    job_id: str | None = None,
    stale_after: float = STALE_AFTER_S,
    heartbeat_s: float = HEARTBEAT_S,
) -> ClaimHandle | Claim:
    """Claim a run for this process.

    Returns a :class:`ClaimHandle` on success, or the :class:`Claim` of the live
    process that holds the run. A stale claim is broken first (and the state file
    then still tells what happened to its owner).
    """
    paths.path.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        started = time.time()
        record = {
            "host": hostname(),
            "pid": os.getpid(),
            "started": started,
            "started_iso": now_iso(started),
            "token": uuid.uuid4().hex,
            "queue_host": queue_host,
            "queue_pid": queue_pid,
            "executor": executor,
            "job_id": job_id,
        }
        if _create_exclusive(paths.claim_file, json.dumps(record, indent=2) + "\n"):
            claim = read_claim(paths.claim_file)
            assert claim is not None  # we just created it
            return ClaimHandle(paths, claim, heartbeat_s)
        current = read_claim(paths.claim_file)
        if current is None:
            continue  # released in between: try again
        if not current.is_stale(stale_after):
            return current
        break_stale_claim(paths, stale_after)
    current = read_claim(paths.claim_file)
    if current is None:  # pragma: no cover - three lost races in a row
        raise OSError(f"could not claim {paths.path}: the claim file keeps changing")
    return current


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


def submitted_job_alive(state: Mapping[str, Any]) -> bool | None:
    """Whether the cluster job of a ``submitted`` state still exists (None: cannot tell).

    submitit's local cluster: the job id is a pid on the submitting host. Slurm:
    asks ``squeue`` (a job no longer listed has ended).
    """
    job = state.get("job_id")
    if not job:
        return None
    if state.get("cluster") == "local":
        if state.get("submit_host") != hostname():
            return None
        try:
            return pid_alive(int(job))
        except ValueError:
            return None
    squeue = shutil.which("squeue")
    if state.get("cluster") != "slurm" or squeue is None:
        return None
    try:
        out = subprocess.run(
            [squeue, "-h", "-j", str(job), "-o", "%T"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        # squeue fails for ids that left its memory: the job is gone.
        return False if "Invalid job id" in out.stderr else None
    return bool(out.stdout.strip())


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
    from .exceptions import LfadsRunsError
    from .io.fitlog import read_fitlog_rows

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
    from .executors.queuefile import queued_run_paths

    queued = queued_run_paths(rc.layout)
    return [
        run_status(r, queued=str(r.paths.path) in queued, tail=tail)
        for r in (rc.all_runs if runs is None else runs)
    ]
