"""One run end to end: prepare -> train -> posterior sampling -> model_params -> done marker.

Every executor (local subprocesses, Slurm jobs, Ray tasks, in-process) runs a
run through :func:`execute`, so the rules are the same everywhere:

- the run is **claimed** first (:func:`lfads_runs.claims.acquire_claim`); a run
  claimed by a live process is left alone, a stale claim is broken;
- a run whose done marker exists is skipped unless ``rerun`` (checked again after
  claiming, so two queues never train a run twice);
- training resumes from the latest checkpoint (the engine does this);
- the **done marker is written last**, atomically, only after training, posterior
  sampling and ``model_params`` all succeeded;
- the **state file** records every transition: state, stage, host, pid, times,
  exit code, failing stage, exception text and the tail of ``lfads.out``;
- all output goes to the run's ``lfads.out``, always appended.

``python -m lfads_runs.pipeline --task-json '{...}'`` runs one :class:`RunTask`
(the local executor starts each run this way).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import attrs

from . import layout as L
from ._atomic import atomic_write_text
from ._procs import pid_alive
from ._run_loader import load_run
from .claims import ClaimHandle, acquire_claim, hostname, now_iso
from .exceptions import ConfigError, DataError, RunFailedError
from .runstate import log_tail, read_state, write_state

if TYPE_CHECKING:
    from .collection import Run

__all__ = [
    "MODES",
    "ENGINES",
    "STAGES",
    "EXIT_DONE",
    "EXIT_FAILED",
    "EXIT_CLAIMED",
    "EXIT_SKIPPED",
    "EXIT_INTERRUPTED",
    "EXIT_TERMINATED",
    "RunTask",
    "RunOutcome",
    "StopRequested",
    "execute",
    "main",
]

MODES = ("train", "posterior")
ENGINES = ("torch", "external")
#: Stages in order; ``posterior`` mode runs only the last two.
STAGES = ("prepare", "train", "posterior", "dump")

EXIT_DONE = 0
EXIT_FAILED = 1
EXIT_CLAIMED = 3  #: another live process holds the run
EXIT_SKIPPED = 4  #: nothing to do (done already)
EXIT_INTERRUPTED = 130  #: SIGINT
EXIT_TERMINATED = 143  #: SIGTERM

_EPOCH_LINE = re.compile(
    r"^Epoch:(?P<epoch>\d+), step:(?P<step>\d+) .*?total: (?P<train>\S+), (?P<valid>\S+)\s"
    r".*\blr: (?P<lr>\S+)\s*$"
)


#: Set while a run writes its final state: a late SIGTERM must not cut that short.
_FINISHING = threading.Event()


class StopRequested(KeyboardInterrupt):
    """SIGTERM (or the death of the queue) asked this run to stop; it stays resumable."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum


# ---------------------------------------------------------------------------- task
@attrs.frozen(kw_only=True)
class RunTask:
    """Everything a process needs to run one run, without the collection (JSON-able).

    Build it with :meth:`from_run`; executors ship it to their workers.
    """

    run_spec: str
    param_index: int
    param_hash: str
    datasets: tuple[str, ...] = attrs.field(converter=tuple)
    path: str
    path_common_data: str
    link_prefix: str
    param_folder: str
    hparams: dict[str, Any]
    mode: str = "train"
    engine: str = "torch"
    device: str | None = None  #: None: CUDA when available, else CPU
    seed: int | None = None
    threads: int | None = None  #: torch threads (None: torch's default)
    posterior_kind: str = "posterior_sample_and_average"
    posterior_samples: int = 512
    checkpoint: str = "lve"
    rerun: bool = False
    config: str | None = None  #: YAML of the collection, to prepare inputs in the worker
    commands: dict[str, str] | None = None  #: external engine: stage -> bash script text
    dump_command: str | list[str] | None = None  #: makes model_params when no checkpoint exists

    def __attrs_post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.engine not in ENGINES:
            raise ConfigError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if self.engine == "external" and not self.commands:
            raise ConfigError("the external engine needs the stage commands (RunTask.commands)")

    @classmethod
    def from_run(
        cls,
        run: Run,
        *,
        mode: str = "train",
        engine: str = "torch",
        device: str | None = None,
        seed: int | None = None,
        threads: int | None = None,
        kind: str | None = None,
        n_samples: int | None = None,
        checkpoint: str = "lve",
        rerun: bool = False,
        script_options: Any = None,
    ) -> RunTask:
        """The task of ``run``; ``kind``/``n_samples`` default to the run's parameters."""
        kind = kind or run.params.posterior_mean_kind
        n = int(n_samples if n_samples is not None else run.params.num_samples_posterior)
        commands = None
        if engine == "external":
            from .scripts import ScriptOptions, stage_script_text

            opts = script_options or ScriptOptions.from_config(
                run.collection.options.get("scripts")
            )
            commands = {
                stage: stage_script_text(run, stage, opts, kind=kind, n_samples=n)
                for stage in ("train", "posterior", "dump")
            }
        source = run.collection.source
        return cls(
            run_spec=run.name,
            param_index=run.param_index,
            param_hash=run.param_hash,
            datasets=run.dataset_names,
            path=str(run.paths.path),
            path_common_data=str(run.paths.path_common_data),
            link_prefix=run.paths.link_prefix,
            param_folder=str(run.paths.param_folder),
            hparams=run.params.to_hparams(run.n_datasets).as_dict(),
            mode=mode,
            engine=engine,
            device=device,
            seed=seed,
            threads=threads,
            posterior_kind=kind,
            posterior_samples=n,
            checkpoint=checkpoint,
            rerun=rerun,
            config=str(source) if source else None,
            commands=commands,
            dump_command=run.dump_command(),  # filled in, an argv run without a shell
        )

    @property
    def paths(self) -> L.RunPaths:
        return L.RunPaths(
            path=Path(self.path),
            path_common_data=Path(self.path_common_data),
            link_prefix=self.link_prefix,
            param_folder=Path(self.param_folder),
        )

    @property
    def label(self) -> str:
        return f"{self.run_spec} {self.param_hash}"

    @property
    def done_marker(self) -> Path:
        p = self.paths
        return p.done_marker if self.mode == "train" else p.done_marker_posterior_only

    @property
    def stages(self) -> tuple[str, ...]:
        return STAGES if self.mode == "train" else ("posterior", "dump")

    def to_json(self) -> str:
        return json.dumps(attrs.asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> RunTask:
        try:
            return cls(**json.loads(text))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid run task: {exc}") from None


# ---------------------------------------------------------------------------- outcome
@attrs.frozen(kw_only=True)
class RunOutcome:
    """What happened to one run in one queue."""

    run_spec: str
    param_index: int
    param_hash: str
    path: str
    status: str  #: done, skipped, failed, interrupted or submitted
    reason: str = ""
    exit_code: int | None = None
    failed_stage: str | None = None
    error: str | None = None
    log_tail: tuple[str, ...] = ()
    elapsed_s: float | None = None
    device: str | None = None
    gpu: str | None = None
    job_id: str | None = None

    @classmethod
    def for_task(cls, task: RunTask, status: str, **kw: Any) -> RunOutcome:
        return cls(
            run_spec=task.run_spec,
            param_index=task.param_index,
            param_hash=task.param_hash,
            path=task.path,
            status=status,
            **kw,
        )

    def as_dict(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        d["log_tail"] = list(self.log_tail)
        return d


# ---------------------------------------------------------------------------- logging
class _RunLog:
    """Appends lines to ``lfads.out`` (never truncates) and tracks epoch progress."""

    def __init__(self, path: Path, on_epoch: Callable[[dict[str, Any]], None], echo: bool):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh: IO[str] = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        self._on_epoch = on_epoch
        self._echo = echo

    def __call__(self, msg: str) -> None:
        for line in str(msg).splitlines() or [""]:
            self.fh.write(line + "\n")
            if self._echo:
                print(line, file=sys.stderr, flush=True)
            m = _EPOCH_LINE.match(line)
            if m:
                self._on_epoch(
                    {
                        "epoch": int(m["epoch"]),
                        "step": int(m["step"]),
                        "total_train": _num(m["train"]),
                        "total_valid": _num(m["valid"]),
                        "learning_rate": _num(m["lr"]),
                    }
                )
        self.fh.flush()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.fh.close()


def _num(text: str) -> float | None:
    try:
        return float(text.rstrip(","))
    except ValueError:
        return None


@contextlib.contextmanager
def _redirect_fds(path: Path) -> Iterator[None]:
    """Send this process's fd 1 and 2 to ``path`` (append) for the block, then restore them."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    saved = os.dup(1), os.dup(2)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in (fd, *saved):
            os.close(f)


@contextlib.contextmanager
def _signals_stop_run(enabled: bool) -> Iterator[None]:
    """Turn SIGTERM into :class:`StopRequested` in the main thread (SIGINT already raises)."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if not _FINISHING.is_set():
            raise StopRequested(signum)

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _watch_process(stop: threading.Event, pid: int) -> None:
    """Stop this run (SIGTERM to ourselves) when process ``pid`` (the queue) dies."""
    while not stop.wait(0.5):
        if not pid_alive(pid):
            if sys.platform == "win32":  # os.kill would terminate us without running the handler
                signal.raise_signal(signal.SIGTERM)
            else:
                os.kill(os.getpid(), signal.SIGTERM)
            return


# ---------------------------------------------------------------------------- stages
class _Pipeline:
    def __init__(self, task: RunTask, run: Run | None, log: _RunLog, record: dict[str, Any]):
        self.task = task
        self.run = run
        self.log = log
        self.record = record
        self.paths = task.paths
        self._hps = None
        self._last_progress_write = 0.0

    # -- state file
    def save(self, **changes: Any) -> None:
        self.record.update(changes)
        write_state(self.paths.state_file, self.record)

    def on_epoch(self, progress: dict[str, Any]) -> None:
        self.record["progress"] = dict(progress, updated=now_iso())
        now = time.monotonic()
        if now - self._last_progress_write >= 0.5:  # tiny runs print many epochs a second
            self._last_progress_write = now
            write_state(self.paths.state_file, self.record)

    @property
    def hps(self):
        if self._hps is None:
            from .hparams import Hyperparameters

            self._hps = Hyperparameters.from_mapping(self.task.hparams)
        return self._hps

    # -- stages
    def stage(self, name: str) -> None:
        self.log(f"==== lfads_runs: stage {name} ({now_iso()})")
        self.save(stage=name)
        getattr(self, f"do_{name}")()
        self.record.setdefault("stages_completed", []).append(name)
        self.save()

    def inputs_present(self) -> bool:
        return all(self.paths.input_file(ds).is_file() for ds in self.task.datasets)

    def do_prepare(self) -> None:
        if self.inputs_present():
            self.log("inputs present")
            return
        run = self.run
        if run is None and self.task.config:
            run = load_run(self.task.config, self.task.run_spec, self.task.param_hash)
        if run is None:
            missing = [str(self.paths.input_file(ds)) for ds in self.task.datasets]
            raise DataError(
                "input files missing and no configuration to prepare them from: "
                + ", ".join(missing)
            )
        run.prepare()
        if not self.inputs_present():
            raise DataError(f"preparing {self.task.label} did not produce every input file")

    def _torch_setup(self) -> str:
        import torch

        if self.task.threads:
            torch.set_num_threads(int(self.task.threads))
        device = self.task.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.record["device"] = device
        return device

    def do_train(self) -> None:
        if self.task.engine == "external":
            return self.external("train")
        from . import engine

        device = self._torch_setup()
        res = engine.train(
            self.paths.path_lfads_input,
            self.paths.path_lfads_output,
            self.hps,
            device=device,
            seed=self.task.seed,
            progress=False,
            log=self.log,
        )
        self.record["train"] = {
            "epochs": res.epochs,
            "steps": res.steps,
            "stop_reason": res.stop_reason,
            "lowest_valid_cost": res.lowest_valid_cost,
            "seconds": round(res.seconds, 3),
            "seed": res.seed,
            "resumed_from": str(res.resumed_from) if res.resumed_from else None,
        }
        self.log(
            f"training stopped ({res.stop_reason}) after {res.epochs} epochs, step {res.steps}"
        )

    def do_posterior(self) -> None:
        if self.task.engine == "external":
            return self.external("posterior")
        from . import engine

        device = self._torch_setup()
        written = engine.sample_posterior(
            self.paths.path_lfads_input,
            self.paths.path_lfads_output,
            self.hps,
            kind=self.task.posterior_kind,
            checkpoint=self.task.checkpoint,
            n_samples=self.task.posterior_samples,
            device=device,
            seed=self.task.seed,
            progress=False,  # lfads.out is a log; the queue shows the runs' progress
        )
        self.log(f"posterior ({self.task.posterior_kind}): wrote {len(written)} files")

    def do_dump(self) -> None:
        if self.task.engine == "external":
            return self.external("dump")
        from .dump import dump_model_params

        self.log.fh.flush()
        path = dump_model_params(
            self.paths.path_lfads_output,
            checkpoint=self.task.checkpoint,
            dump_command=self.task.dump_command,
            log_path=self.paths.log_file,
        )
        self.log(f"model_params written: {path}")

    def external(self, stage: str) -> None:
        assert self.task.commands is not None
        script = self.task.commands[stage]
        self.log.fh.flush()
        env = dict(os.environ)  # the executor's (executors._forkserver.openmp_env)
        if self.task.threads:
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(self.task.threads)
        bash = shutil.which("bash")
        if bash is None:  # e.g. Windows without Git Bash or WSL
            raise RunFailedError(f"the {stage} command is a bash script, and bash is not on PATH")
        # Same process group as this run: a stop or kill of the run reaches it too.
        proc = subprocess.Popen(
            [bash, "-c", script],
            stdin=subprocess.DEVNULL,
            stdout=self.log.fh,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            rc = proc.wait()
        except KeyboardInterrupt:
            _stop_child(proc, timeout=20.0)
            raise
        if rc != 0:
            raise RunFailedError(f"the {stage} command exited with status {rc}")


def _stop_child(proc: subprocess.Popen, timeout: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------------------- execute
def execute(
    task: RunTask,
    *,
    run: Run | None = None,
    executor: str = "inprocess",
    queue_host: str | None = None,
    queue_pid: int | None = None,
    job_id: str | None = None,
    redirect_output: bool = False,
    install_signal_handlers: bool = False,
    watch_pid: int | None = None,
    echo: bool = False,
) -> RunOutcome:
    """Run ``task`` in this process under a claim; never raises for a failing run.

    Parameters
    ----------
    run
        The :class:`~lfads_runs.collection.Run`, when available (to prepare inputs).
    executor, queue_host, queue_pid, job_id
        Recorded in the claim and the state file.
    redirect_output
        Send this process's stdout/stderr (file descriptors) to ``lfads.out``
        while the run executes (Slurm jobs, Ray workers).
    install_signal_handlers
        SIGTERM stops the run cleanly (main thread only).
    watch_pid
        Stop the run when this process (the local queue) dies.
    echo
        Also print the run's log lines on stderr (in-process runs).

    Returns
    -------
    RunOutcome
        ``status`` is done, skipped, failed or interrupted. A run held by another
        live process is ``skipped`` with ``exit_code`` :data:`EXIT_CLAIMED`.
    """
    t0 = time.time()
    paths = task.paths
    if task.mode == "train" and not task.rerun and task.done_marker.is_file():
        return RunOutcome.for_task(task, "skipped", reason="done already", exit_code=EXIT_SKIPPED)
    from .io.checkpoints import has_checkpoint

    trained = has_checkpoint(paths.path_lfads_output)
    if task.mode == "posterior" and not trained:
        return RunOutcome.for_task(
            task, "skipped", reason="not trained (no checkpoint)", exit_code=EXIT_SKIPPED
        )
    claim = acquire_claim(
        paths, queue_host=queue_host, queue_pid=queue_pid, executor=executor, job_id=job_id
    )
    if not isinstance(claim, ClaimHandle):
        return RunOutcome.for_task(
            task, "skipped", reason=f"claimed by {claim.describe()}", exit_code=EXIT_CLAIMED
        )
    with claim:
        # Re-check under the claim: another queue may have finished it meanwhile.
        if task.mode == "train" and task.done_marker.is_file():
            if not task.rerun:
                return RunOutcome.for_task(
                    task, "skipped", reason="done already", exit_code=EXIT_SKIPPED
                )
            task.done_marker.unlink()  # the marker must describe the latest attempt
        elif task.mode == "posterior":
            with contextlib.suppress(FileNotFoundError):
                task.done_marker.unlink()
        redirect = _redirect_fds(paths.log_file) if redirect_output else contextlib.nullcontext()
        with redirect, _signals_stop_run(install_signal_handlers):
            return _execute_claimed(task, run, executor, job_id, t0, watch_pid, echo)


def _execute_claimed(
    task: RunTask,
    run: Run | None,
    executor: str,
    job_id: str | None,
    t0: float,
    watch_pid: int | None,
    echo: bool,
) -> RunOutcome:
    paths = task.paths
    previous = read_state(paths.state_file) or {}
    record: dict[str, Any] = {
        "state": "running",
        "mode": task.mode,
        "stage": None,
        "stages_completed": [],
        "run_spec": task.run_spec,
        "param_index": task.param_index,
        "param_hash": task.param_hash,
        "engine": task.engine,
        "executor": executor,
        "job_id": job_id,
        "host": hostname(),
        "pid": os.getpid(),
        "gpu": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "threads": task.threads,
        "device": task.device,
        "attempt": int(previous.get("attempt") or 0) + 1,
        "started": now_iso(t0),
        "started_ts": t0,
        "ended": None,
        "ended_ts": None,
        "exit_code": None,
        "failed_stage": None,
        "error": None,
        "traceback": None,
        "log_tail": [],
        "progress": previous.get("progress"),  # the last epoch known, until a new one
    }
    pipe: _Pipeline | None = None
    log = _RunLog(paths.log_file, lambda p: pipe.on_epoch(p) if pipe else None, echo)
    pipe = _Pipeline(task, run, log, record)
    stop_watch = threading.Event()
    if watch_pid:
        threading.Thread(target=_watch_process, args=(stop_watch, watch_pid), daemon=True).start()
    log(
        f"==== lfads_runs: {task.mode} {task.label} attempt {record['attempt']} on "
        f"{record['host']} pid {record['pid']} ({now_iso(t0)}; engine {task.engine}, "
        f"executor {executor}, device {task.device or 'auto'}, threads {task.threads or 'auto'}, "
        f"CUDA_VISIBLE_DEVICES={record['gpu']})"
    )
    status, code, reason = "done", EXIT_DONE, ""
    reraise: BaseException | None = None
    _FINISHING.clear()
    try:
        pipe.save()
        for stage in task.stages:
            pipe.stage(stage)
        atomic_write_text(task.done_marker, f"{now_iso()} {task.label}\n")
        pipe.record["stage"] = "done"
    except KeyboardInterrupt as exc:
        code = exc.signum + 128 if isinstance(exc, StopRequested) else EXIT_INTERRUPTED
        status, reason = "interrupted", f"interrupted in stage {record['stage']}"
        log(f"==== lfads_runs: {reason}; the run resumes from its latest checkpoint")
    except (SystemExit, GeneratorExit) as exc:  # e.g. a cluster job being requeued
        status, code = "interrupted", EXIT_TERMINATED
        reason = f"process exiting in stage {record['stage']}"
        log(f"==== lfads_runs: {reason}; the run resumes from its latest checkpoint")
        reraise = exc
    except Exception as exc:  # a failing run must never take the queue down
        status, code = "failed", EXIT_FAILED
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        log(text.rstrip())
        record.update(
            failed_stage=record["stage"],
            error=f"{type(exc).__name__}: {exc}",
            traceback=text,
        )
        reason = f"stage {record['stage']}: {type(exc).__name__}: {exc}"
        log(f"==== lfads_runs: FAILED in stage {record['stage']}")
    finally:
        _FINISHING.set()
        stop_watch.set()
        t1 = time.time()
        log(f"==== lfads_runs: {status} after {t1 - t0:.1f} s ({now_iso(t1)})")
        log.close()
        tail = log_tail(paths.log_file)
        record.update(
            state=status,
            ended=now_iso(t1),
            ended_ts=t1,
            exit_code=code,
            log_tail=tail if status != "done" else [],
        )
        write_state(paths.state_file, record)
    if reraise is not None:
        raise reraise
    return RunOutcome.for_task(
        task,
        status,
        reason=reason,
        exit_code=code,
        failed_stage=record["failed_stage"],
        error=record["error"],
        log_tail=tuple(record["log_tail"]),
        elapsed_s=round(time.time() - t0, 3),
        device=record.get("device"),
        gpu=record.get("gpu"),
        job_id=job_id,
    )


def outcome_exit_code(outcome: RunOutcome) -> int:
    """The process exit status that reports ``outcome`` to a parent queue."""
    if outcome.exit_code is not None:
        return int(outcome.exit_code)
    return {"done": EXIT_DONE, "skipped": EXIT_SKIPPED}.get(outcome.status, EXIT_FAILED)


def main(argv: list[str] | None = None) -> int:
    """``python -m lfads_runs.pipeline``: run one task (used by the local executor)."""
    ap = argparse.ArgumentParser(prog="python -m lfads_runs.pipeline", description=__doc__)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--task-json", help="the RunTask as JSON text")
    src.add_argument("--task-file", help="a file holding the RunTask as JSON")
    ap.add_argument("--executor", default="local")
    ap.add_argument("--queue-pid", type=int, default=None)
    ap.add_argument("--queue-host", default=None)
    ap.add_argument("--watch-parent", action="store_true", help="stop when the parent dies")
    ap.add_argument("--redirect-output", action="store_true", help="append fd 1/2 to lfads.out")
    args = ap.parse_args(argv)
    text = args.task_json if args.task_json else Path(args.task_file).read_text(encoding="utf-8")
    try:
        task = RunTask.from_json(text)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    outcome = execute(
        task,
        executor=args.executor,
        queue_host=args.queue_host,
        queue_pid=args.queue_pid,
        redirect_output=args.redirect_output,
        install_signal_handlers=True,
        watch_pid=os.getppid() if args.watch_parent else None,
    )
    return outcome_exit_code(outcome)


if __name__ == "__main__":
    sys.exit(main())
