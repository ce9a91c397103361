"""What every executor shares: the protocol, the scheduler loop and the queue result.

An executor starts runs (:meth:`Executor.submit` returns a :class:`Job`) and
reports how they ended (:meth:`Job.poll`). Everything else is common and lives
in :func:`run_queue`: which runs to skip, preparing missing inputs, not starting
runs that another live process holds, progress lines on stderr, the queue file,
the final summary, and stopping cleanly on Ctrl-C / SIGTERM (a second Ctrl-C
kills). The claim / done-marker / resume rules themselves live in
:func:`lfads_runs.pipeline.execute`, which every executor's workers run.
"""

from __future__ import annotations

import abc
import contextlib
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TextIO

import attrs

from .. import progress as _progress
from ..claims import break_stale_claim, hostname, live_claim, now_iso, read_claim
from ..pipeline import (
    EXIT_CLAIMED,
    EXIT_DONE,
    EXIT_INTERRUPTED,
    EXIT_SKIPPED,
    EXIT_TERMINATED,
    RunOutcome,
    RunTask,
)
from ..runstate import log_tail, read_state, write_state
from .options import ExecutorOption, QueueOptions
from .queuefile import update_queue

if TYPE_CHECKING:
    from ..collection import Run, RunCollection

#: Queue options an executor may share by name (see :meth:`Executor.settings`).
QUEUE_FIELDS = frozenset(attrs.fields_dict(QueueOptions))

__all__ = [
    "Executor",
    "Job",
    "QueueItem",
    "QueueResult",
    "Reporter",
    "run_queue",
    "outcome_from_exit",
    "ORPHAN_WAIT_S",
]

#: How long a queue waits for a run still held by a process whose own queue died
#: (it is stopping after a SIGKILL of that queue) before it gives up on the run.
ORPHAN_WAIT_S = 60.0


# ---------------------------------------------------------------------------- protocol
class Job(abc.ABC):
    """One submitted run."""

    def __init__(self, task: RunTask):
        self.task = task
        self.started = time.time()
        self.job_id: str | None = None
        self.detail = ""  #: where it runs, for the progress line

    @abc.abstractmethod
    def poll(self) -> RunOutcome | None:
        """The outcome once the run has ended, else None. Never blocks for long."""

    def stop(self) -> None:  # noqa: B027 - optional hook
        """Ask the run to stop cleanly (it stays resumable)."""

    def kill(self) -> None:  # noqa: B027 - optional hook
        """Stop the run now."""


class Executor(abc.ABC):
    """Starts runs somewhere. Subclasses set :attr:`name`, declare :attr:`options`
    (their constructor's keyword arguments) and implement :meth:`submit`."""

    name: ClassVar[str] = ""
    #: One line for ``--executor`` help.
    summary: ClassVar[str] = ""
    #: Every keyword option of the constructor: checks, defaults, help, CLI flags.
    options: ClassVar[tuple[ExecutorOption, ...]] = ()
    #: The YAML section of this executor's options (e.g. ``slurm``), if any.
    section: ClassVar[str | None] = None
    #: Seconds between polls of running jobs.
    poll_interval: float = 0.05
    #: Seconds a stopped job may take before it is killed.
    stop_timeout: float = 60.0
    #: On Ctrl-C, leave submitted jobs running (cluster jobs) instead of stopping them.
    detach_on_interrupt: bool = False
    #: A run that ends interrupted stops the whole queue (in-process runs catch Ctrl-C).
    interrupt_stops_queue: bool = False

    @classmethod
    def available(cls) -> bool:
        """Whether this executor can run here (its optional dependency is installed)."""
        return True

    @classmethod
    def option(cls, name: str) -> ExecutorOption | None:
        """The declared option ``name`` (None: this executor does not take it)."""
        return next((o for o in cls.options if o.name == name), None)

    @classmethod
    def settings(cls, rc: RunCollection, queue: QueueOptions) -> dict[str, Any]:
        """Constructor options for a queue of ``rc``'s runs, before ``executor_options``.

        By default: the executor's YAML :attr:`section`, then every queue option set
        with the name of one of its options (``gpus``, ``threads``, ``device``, ...).
        Executors that map queue options onto their own (Slurm ``cpus_per_task``
        from ``threads``) override this.
        """
        out = dict(rc.options.get(cls.section) or {}) if cls.section else {}
        for opt in cls.options:
            if opt.name in QUEUE_FIELDS and getattr(queue, opt.name) is not None:
                out[opt.name] = getattr(queue, opt.name)
        return out

    def capacity(self) -> int | None:
        """How many more runs can start now (None: no limit)."""
        return None

    def plan(self, n_runs: int) -> None:  # noqa: B027 - optional hook
        """Told once, before any submit, how many runs need work."""

    @abc.abstractmethod
    def submit(self, task: RunTask, run: Run) -> Job:
        """Start ``task`` and return its job."""

    def describe(self) -> str:
        return self.name

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (cluster connections) after the queue."""


# ---------------------------------------------------------------------------- outcomes
def outcome_from_exit(
    task: RunTask,
    code: int,
    *,
    pid: int | None = None,
    stop_requested: bool = False,
    job_id: str | None = None,
    detail: str = "",
) -> RunOutcome:
    """Turn a worker's exit status plus the run's state file into a :class:`RunOutcome`.

    When the worker died without recording why (killed, crashed), the state file
    is completed here and its now stale claim removed, so the run shows as failed
    (or interrupted) rather than stale.
    """
    paths = task.paths
    if code == EXIT_CLAIMED:
        claim = read_claim(paths.claim_file)
        who = claim.describe() if claim else "another process"
        return RunOutcome.for_task(task, "skipped", reason=f"claimed by {who}", exit_code=code)
    if code == EXIT_SKIPPED:
        return RunOutcome.for_task(task, "skipped", reason="nothing to do", exit_code=code)
    state = read_state(paths.state_file) or {}
    mine = pid is None or (state.get("pid") == pid and state.get("host") == hostname())
    recorded = mine and state.get("state") in ("done", "failed", "interrupted")
    if code == EXIT_DONE and recorded and state.get("state") == "done":
        return _from_state(task, "done", state, code, job_id)
    interrupted = stop_requested or code in (EXIT_INTERRUPTED, EXIT_TERMINATED, -2, -15)
    if recorded:
        return _from_state(task, state["state"], state, code, job_id)
    # The worker ended without a final record: write one for it.
    if pid is not None:
        with contextlib.suppress(OSError):
            claim = read_claim(paths.claim_file)
            if claim is not None and claim.pid == pid and claim.host == hostname():
                break_stale_claim(paths)
    tail = log_tail(paths.log_file)
    why = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
    status = "interrupted" if interrupted else "failed"
    stage = state.get("stage") if mine else None
    now = time.time()
    record = dict(state) if mine else {"run_spec": task.run_spec, "param_hash": task.param_hash}
    record.update(
        state=status,
        ended=now_iso(now),
        ended_ts=now,
        exit_code=code,
        failed_stage=None if interrupted else stage,
        error=None if interrupted else f"worker process {why}" + (f" ({detail})" if detail else ""),
        log_tail=tail,
        job_id=job_id or record.get("job_id"),
    )
    with contextlib.suppress(OSError):
        write_state(paths.state_file, record)
    return _from_state(task, status, record, code, job_id)


def _from_state(
    task: RunTask, status: str, state: dict[str, Any], code: int, job_id: str | None
) -> RunOutcome:
    start, end = state.get("started_ts"), state.get("ended_ts")
    num = (int, float)
    elapsed = round(end - start, 3) if isinstance(start, num) and isinstance(end, num) else None
    reason = ""
    if status == "failed":
        reason = f"stage {state.get('failed_stage')}: {state.get('error')}"
    elif status == "interrupted":
        reason = f"interrupted in stage {state.get('stage')}"
    return RunOutcome.for_task(
        task,
        status,
        reason=reason,
        exit_code=code,
        failed_stage=state.get("failed_stage") if status == "failed" else None,
        error=state.get("error") if status == "failed" else None,
        log_tail=tuple(state.get("log_tail") or ()) if status != "done" else (),
        elapsed_s=elapsed,
        device=state.get("device"),
        gpu=state.get("gpu"),
        job_id=job_id or state.get("job_id"),
    )


# ---------------------------------------------------------------------------- result
@attrs.frozen
class QueueResult:
    """The outcome of every run a queue was given, in queue order."""

    outcomes: list[RunOutcome]
    executor: str
    queue_id: str
    elapsed_s: float
    interrupted: bool = False
    dry_run: bool = False

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def n_done(self) -> int:
        return self.count("done")

    @property
    def n_skipped(self) -> int:
        return self.count("skipped")

    @property
    def n_failed(self) -> int:
        return self.count("failed")

    @property
    def failed(self) -> list[RunOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.interrupted and self.n_failed == 0

    @property
    def exit_code(self) -> int:
        """0 all ok, 1 some runs failed, 130 interrupted."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        return 1 if self.n_failed else 0

    def summary(self) -> str:
        """``N done, M skipped, K failed`` (plus interrupted / submitted / planned when any)."""
        text = f"{self.n_done} done, {self.n_skipped} skipped, {self.n_failed} failed"
        for extra in ("interrupted", "submitted", "planned"):
            n = self.count(extra)
            if n:
                text += f", {n} {extra}"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "executor": self.executor,
            "queue_id": self.queue_id,
            "elapsed_s": round(self.elapsed_s, 3),
            "interrupted": self.interrupted,
            "dry_run": self.dry_run,
            "summary": self.summary(),
            "counts": {
                s: self.count(s)
                for s in ("done", "skipped", "failed", "interrupted", "submitted", "planned")
            },
            "runs": [o.as_dict() for o in self.outcomes],
        }


# ---------------------------------------------------------------------------- progress
class Reporter:
    """Progress on stderr: a line per run start and finish, and the queue's state.

    On a terminal (or with ``progress=True``) the queue's state is a tqdm bar of the
    runs that the lines scroll above; elsewhere (logs, pipes) it is a plain
    ``queue: ...`` line after each finished run. ``quiet`` prints nothing.
    """

    def __init__(
        self,
        total: int,
        stream: TextIO | None = None,
        quiet: bool = False,
        progress: bool | None = None,
    ):
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.t0 = time.monotonic()
        self.bar = _progress.bar(
            total, "queue", "run", progress=False if quiet else progress, stream=self.stream
        )

    def line(self, text: str) -> None:
        if self.quiet:
            return
        if self.bar.disable:
            print(text, file=self.stream, flush=True)
        else:
            _progress.write(text, self.stream)

    def finished_before_start(self, n: int) -> None:
        """Runs that needed no work count as finished on the bar."""
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()

    def _tag(self, index: int) -> str:
        w = len(str(self.total))
        return f"[{index + 1:>{w}}/{self.total}]"

    def start(self, index: int, task: RunTask, detail: str) -> None:
        self.line(f"{self._tag(index)} start    {task.label}" + (f" ({detail})" if detail else ""))

    def finish(self, index: int, o: RunOutcome) -> None:
        took = f" in {o.elapsed_s:.1f} s" if o.elapsed_s is not None else ""
        word = {"failed": "FAILED", "interrupted": "stopped"}.get(o.status, o.status)
        text = f"{self._tag(index)} {word:<8} {o.run_spec} {o.param_hash}{took}"
        if o.reason:
            text += f": {o.reason}"
        self.line(text)
        if o.status == "failed" and o.log_tail:
            self.line("    last lines of lfads.out:")
            for ln in o.log_tail[-10:]:
                self.line(f"    | {ln}")

    def overall(self, outcomes: Sequence[RunOutcome | None], running: int) -> None:
        finished = [o for o in outcomes if o is not None]
        counts = {s: sum(o.status == s for o in finished) for s in ("done", "skipped", "failed")}
        waiting = len(outcomes) - len(finished) - running
        done = f"{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed"
        if not self.bar.disable:
            self.bar.update(len(finished) - self.bar.n)
            self.bar.set_postfix_str(f"{done}, {running} running, {waiting} waiting")
            return
        self.line(
            f"queue: {len(finished)}/{len(outcomes)} finished ({done}), {running} running, "
            f"{waiting} waiting, {time.monotonic() - self.t0:.0f} s"
        )


# ---------------------------------------------------------------------------- scheduler
@attrs.define
class QueueItem:
    """A run in a queue: the collection's Run and its task."""

    index: int
    run: Run
    task: RunTask
    outcome: RunOutcome | None = None
    job: Job | None = None
    not_before: float = 0.0
    waiting_since: float | None = None


@contextlib.contextmanager
def _sigterm_raises_interrupt() -> Iterator[None]:
    """SIGTERM to the queue behaves like Ctrl-C (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _skip_reason(item: QueueItem) -> str | None:
    """Why this run needs no work (None: it does)."""
    task, paths = item.task, item.task.paths
    if task.mode == "train":
        if not task.rerun and paths.done_marker.is_file():
            return "done already"
        return None
    from ..io.checkpoints import has_checkpoint

    if not has_checkpoint(paths.path_lfads_output):
        return "not trained (no checkpoint)"
    if not task.rerun:
        files = item.run.posterior_files(task.posterior_kind)
        if all(f.is_file() for split in files.values() for f in split.values()):
            return f"{task.posterior_kind} files exist"
    return None


def _prepare(item: QueueItem, reporter: Reporter) -> RunOutcome | None:
    """Prepare missing inputs in this process; a failure becomes the run's outcome."""
    task = item.task
    if all(task.paths.input_file(ds).is_file() for ds in task.datasets):
        return None
    reporter.line(f"preparing inputs of {task.label}")
    try:
        item.run.prepare()
        return None
    except Exception as exc:  # one bad dataset must not stop the queue
        t = time.time()
        error = f"{type(exc).__name__}: {exc}"
        record = dict(read_state(task.paths.state_file) or {})
        record.update(
            state="failed",
            stage="prepare",
            failed_stage="prepare",
            run_spec=task.run_spec,
            param_hash=task.param_hash,
            host=hostname(),
            pid=os.getpid(),
            started=now_iso(t),
            started_ts=t,
            ended=now_iso(t),
            ended_ts=t,
            exit_code=1,
            error=error,
            log_tail=[],
        )
        with contextlib.suppress(OSError):
            write_state(task.paths.state_file, record)
        return RunOutcome.for_task(
            task,
            "failed",
            reason=f"stage prepare: {error}",
            exit_code=1,
            failed_stage="prepare",
            error=error,
        )


def run_queue(
    items: Iterable[tuple[Run, RunTask]],
    executor: Executor,
    *,
    reporter: Reporter | None = None,
    quiet: bool = False,
    progress: bool | None = None,
    dry_run: bool = False,
    prepare: bool = True,
) -> QueueResult:
    """Run every ``(run, task)`` through ``executor``; never raises for a failing run.

    Runs whose work is done are skipped (unless the task says ``rerun``); a run held
    by another live process is skipped (or, when that process's queue is gone and
    it is winding down, waited for up to :data:`ORPHAN_WAIT_S`).

    Returns
    -------
    QueueResult
        Also written to the collection's queue file.
    """
    t0 = time.time()
    queue = [QueueItem(i, run, task) for i, (run, task) in enumerate(items)]
    reporter = reporter or Reporter(len(queue), quiet=quiet, progress=progress)
    qid = f"{hostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    layout = queue[0].run.collection.layout if queue else None

    for item in queue:
        reason = _skip_reason(item)
        if reason:
            item.outcome = RunOutcome.for_task(item.task, "skipped", reason=reason)
    executor.plan(sum(it.outcome is None for it in queue))
    if dry_run:
        for item in queue:
            if item.outcome is None:
                item.outcome = RunOutcome.for_task(item.task, "planned", reason=executor.describe())
        reporter.close()
        return QueueResult([i.outcome for i in queue], executor.name, qid, 0.0, dry_run=True)

    def record(state: str = "running") -> None:
        if layout is None:
            return
        runs = []
        for it in queue:
            o = it.outcome
            st = o.status if o else ("running" if it.job else "queued")
            runs.append(
                {
                    "run_spec": it.task.run_spec,
                    "param_index": it.task.param_index,
                    "param_hash": it.task.param_hash,
                    "path": it.task.path,
                    "state": st,
                    "reason": o.reason if o else "",
                    "exit_code": o.exit_code if o else None,
                    "job_id": (o.job_id if o else None) or (it.job.job_id if it.job else None),
                }
            )
        update_queue(
            layout,
            {
                "id": qid,
                "host": hostname(),
                "pid": os.getpid(),
                "executor": executor.name,
                "mode": queue[0].task.mode,
                "started": now_iso(t0),
                "started_ts": t0,
                "state": state,
                "summary": _summary([it.outcome for it in queue]),
                "runs": runs,
            },
        )

    pending = [it for it in queue if it.outcome is None]
    active: list[QueueItem] = []
    interrupted = False
    reporter.line(
        f"queue: {len(queue)} runs ({len(queue) - len(pending)} need no work) "
        f"on {executor.describe()}"
    )
    reporter.finished_before_start(len(queue) - len(pending))
    record()
    try:
        with _sigterm_raises_interrupt():
            if prepare and pending and pending[0].task.mode == "train":
                for item in list(pending):
                    item.outcome = _prepare(item, reporter)
                    if item.outcome is not None:
                        pending.remove(item)
                        reporter.finish(item.index, item.outcome)
            while pending or active:
                started = _start_some(pending, active, executor, reporter)
                finished = _collect(active, reporter, stop_requested=False)
                if executor.interrupt_stops_queue and any(
                    it.outcome is not None and it.outcome.status == "interrupted" for it in queue
                ):
                    raise KeyboardInterrupt
                if started or finished:
                    record()
                    if finished:
                        reporter.overall([it.outcome for it in queue], len(active))
                else:
                    time.sleep(executor.poll_interval)
    except KeyboardInterrupt:
        interrupted = True
        _stop_all(active, executor, reporter)
        for item in pending:
            item.outcome = RunOutcome.for_task(
                item.task, "interrupted", reason="not started (queue stopped)"
            )
    finally:
        executor.close()
        reporter.close()
    outcomes = [it.outcome for it in queue]
    result = QueueResult(
        [o for o in outcomes if o is not None], executor.name, qid, time.time() - t0, interrupted
    )
    record("interrupted" if interrupted else "finished")
    reporter.line(f"queue: {result.summary()} in {result.elapsed_s:.1f} s")
    return result


def _summary(outcomes: Sequence[RunOutcome | None]) -> dict[str, int]:
    out: dict[str, int] = {}
    for o in outcomes:
        if o is not None:
            out[o.status] = out.get(o.status, 0) + 1
    return out


def _start_some(
    pending: list[QueueItem], active: list[QueueItem], executor: Executor, reporter: Reporter
) -> bool:
    started = False
    now = time.monotonic()
    for item in list(pending):
        cap = executor.capacity()
        if cap is not None and cap <= 0:
            break
        if item.not_before > now:
            continue
        claim = live_claim(item.task.paths.path)
        if claim is not None:
            if claim.queue_alive() is False:
                # Its queue died and it is stopping: wait for it a while, then take over.
                item.waiting_since = item.waiting_since or now
                if now - item.waiting_since < ORPHAN_WAIT_S:
                    item.not_before = now + 0.25
                    continue
            pending.remove(item)
            item.outcome = RunOutcome.for_task(
                item.task, "skipped", reason=f"claimed by {claim.describe()}"
            )
            reporter.finish(item.index, item.outcome)
            started = True
            continue
        pending.remove(item)
        try:
            item.job = executor.submit(item.task, item.run)
        except Exception as exc:  # e.g. sbatch refused the job
            item.outcome = RunOutcome.for_task(
                item.task,
                "failed",
                reason=f"could not start: {type(exc).__name__}: {exc}",
                exit_code=1,
                error=f"{type(exc).__name__}: {exc}",
            )
            reporter.finish(item.index, item.outcome)
            started = True
            continue
        active.append(item)
        reporter.start(item.index, item.task, item.job.detail)
        started = True
    return started


def _collect(active: list[QueueItem], reporter: Reporter, *, stop_requested: bool) -> bool:
    finished = False
    for item in list(active):
        assert item.job is not None
        outcome = item.job.poll()
        if outcome is None:
            continue
        if stop_requested and outcome.status == "failed" and outcome.exit_code in (-9, -15):
            outcome = attrs.evolve(outcome, status="interrupted", reason="stopped")
        item.outcome = outcome
        active.remove(item)
        reporter.finish(item.index, outcome)
        finished = True
    return finished


def _stop_all(active: list[QueueItem], executor: Executor, reporter: Reporter) -> None:
    """First Ctrl-C: stop every job cleanly and wait; a second one kills them."""
    if not active:
        return
    if executor.detach_on_interrupt:
        for item in active:
            assert item.job is not None
            item.outcome = RunOutcome.for_task(
                item.task,
                "submitted",
                reason=f"job {item.job.job_id} keeps running",
                job_id=item.job.job_id,
            )
        reporter.line(
            f"queue: stopped waiting; {len(active)} submitted jobs keep running "
            "(lfads-runs status shows them)"
        )
        active.clear()
        return
    reporter.line(
        f"queue: stopping {len(active)} running runs (they stay resumable); "
        "press Ctrl-C again to kill them"
    )
    for item in active:
        assert item.job is not None
        item.job.stop()
    deadline = time.monotonic() + executor.stop_timeout
    killed = False
    while active:
        try:
            _collect(active, reporter, stop_requested=True)
            if active and not killed and time.monotonic() > deadline:
                raise KeyboardInterrupt
            time.sleep(executor.poll_interval)
        except KeyboardInterrupt:
            if not killed:
                reporter.line(f"queue: killing {len(active)} runs")
                for item in active:
                    assert item.job is not None
                    item.job.kill()
                killed = True
