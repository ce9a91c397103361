"""Claims on runs, and which live processes hold runs or use a prepared data folder.

The **claim** (``lfads_runs.claim``, name from :mod:`lfads_runs.layout`) is created
exclusively by the process that trains the run, holding its host, pid and start
time as JSON; its modification time is a heartbeat. Two queues on one collection
therefore never train the same run. A claim whose pid is dead (same host) or whose
heartbeat is old is *stale* and may be broken by the next process that wants the run.

The one place that reads run claims to refuse a change: ``delete_lfads_output`` /
``delete_lfads_input_files`` (:mod:`lfads_runs.actions.cleanup`) and rewriting prepared
inputs (``prepare --regenerate``, or a source file whose content changed) both
ask here, and both refuse with :class:`~lfads_runs.exceptions.RunBusyError`.

Before prepared inputs are rewritten, the runs linking to them are looked up on
disk, including those of parameter sets no longer in the configuration: a run
that trained on the old inputs would silently stop matching them, and a run
training now would read a mix of old and new files.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import attrs

from . import layout as L
from ._atomic import LockTimeout, file_lock, fsync_dir
from ._procs import pid_alive
from ._tempfiles import make_temp, sweep_stale_temps

__all__ = [
    "HEARTBEAT_S",
    "STALE_AFTER_S",
    "Claim",
    "ClaimHandle",
    "InputUser",
    "acquire_claim",
    "break_stale_claim",
    "hostname",
    "input_users",
    "live_claim",
    "now_iso",
    "read_claim",
]

#: Seconds between heartbeats of a claim's owner (the claim file's mtime is touched).
HEARTBEAT_S = 15.0
#: A claim whose heartbeat is older than this is stale (on any host).
STALE_AFTER_S = 600.0


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


# ---------------------------------------------------------------------------- holders


def live_claim(run_dir: Path, *, ignore_own: bool = False) -> Claim | None:
    """The claim of the live process holding ``run_dir``; None when there is none or
    its owner is dead (stale). ``ignore_own``: a claim of this very process is no holder."""
    claim = read_claim(run_dir / L.CLAIM_FILE)
    if claim is None or claim.is_stale() or (ignore_own and claim.pid == os.getpid()):
        return None
    return claim


@attrs.frozen
class InputUser:
    run_dir: Path
    trained: bool  #: checkpoints or model_params exist
    live_claim: Claim | None  #: the claim of another live process holding the run

    def describe(self) -> str:
        live = self.live_claim
        return str(self.run_dir) + (f" (running: {live.describe()})" if live else "")


def _links_into(input_dir: Path, common: Path) -> bool:
    try:
        entries = list(os.scandir(input_dir))
    except OSError:
        return False
    for e in entries:
        try:
            if Path(e.path).resolve().parent == common:
                return True
        except (OSError, RuntimeError):
            continue
    return False


def input_users(layout: L.CollectionLayout, spec: str, common: Path) -> list[InputUser]:
    """Run folders ``param_*/<spec>/`` whose ``lfadsInput/`` links into ``common``."""
    from .io.checkpoints import has_checkpoint

    common = common.resolve()
    users = []
    for pf in layout.param_folders_on_disk():
        run_dir = pf / spec
        if not _links_into(run_dir / L.LFADS_INPUT_DIR, common):
            continue
        out = run_dir / L.LFADS_OUTPUT_DIR
        trained = (out / L.MODEL_PARAMS).exists() or has_checkpoint(out)
        users.append(InputUser(run_dir, trained, live_claim(run_dir, ignore_own=True)))
    return users
