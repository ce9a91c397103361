"""Slurm executor through submitit (extra ``slurm``): one cluster job per run.

Resources come from the YAML ``slurm:`` section or the arguments (``partition``,
``time`` in minutes, ``gpus_per_node``, ``mem_gb``, ``cpus_per_task``, ``account``,
``qos``, ``constraint``, ``additional`` sbatch parameters). Each job runs
:func:`lfads_runs.pipeline.execute` with the same claim / done-marker / resume
rules as the local executor; its output is appended to the run's ``lfads.out``
(submitit's own logs stay in ``<collection>/slurm_logs``). Job ids are recorded in
the run's state file. A job that hits its time limit or is preempted is requeued
by submitit and resumes from the latest checkpoint.

``cluster="local"`` runs the same path as local processes (for tests and for
trying a configuration without a cluster); ``cluster="debug"`` runs in this process.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .._optional import has_module, require
from .._procs import pid_alive
from ..claims import break_stale_claim, hostname, now_iso, read_claim
from ..exceptions import ConfigError
from ..pipeline import RunOutcome, RunTask, execute
from ..runstate import log_tail, read_state
from ..runstate import write_state as _write_state
from .base import Executor, Job
from .options import ExecutorOption, QueueOptions

if TYPE_CHECKING:
    from ..collection import Run, RunCollection

__all__ = ["SlurmExecutor", "SlurmJob", "run_job"]

_CLUSTERS = ("slurm", "local", "debug")


def _job_id_here() -> str | None:
    try:
        import submitit

        return str(submitit.JobEnvironment().job_id)
    except Exception:  # not inside a submitit job
        return os.environ.get("SLURM_JOB_ID")


def run_job(task_json: str) -> dict[str, Any]:
    """The body of one cluster job: execute the run, return its outcome as a dict."""
    task = RunTask.from_json(task_json)
    outcome = execute(
        task,
        executor="slurm",
        job_id=_job_id_here(),
        redirect_output=True,
        install_signal_handlers=True,
    )
    return outcome.as_dict()


def _checkpointable(requeue: bool):
    """The job callable; with ``requeue``, submitit requeues it on timeout or preemption."""
    if not requeue:
        return run_job
    import submitit

    class RunJob(submitit.helpers.Checkpointable):
        """Resubmitted with the same task when the job is preempted or times out."""

        def __call__(self, task_json: str) -> dict[str, Any]:
            return run_job(task_json)

    return RunJob()


class SlurmJob(Job):
    def __init__(self, task: RunTask, sjob: Any, executor: SlurmExecutor):
        super().__init__(task)
        self.sjob = sjob
        self.job_id = str(sjob.job_id)
        self._executor = executor
        self.detail = f"{executor.cluster} job {self.job_id}"

    def poll(self) -> RunOutcome | None:
        if not self._executor.wait:
            return RunOutcome.for_task(
                self.task, "submitted", reason=f"job {self.job_id}", job_id=self.job_id
            )
        try:
            if not self.sjob.done():
                return None
        except Exception:  # sacct hiccup: try again at the next poll
            return None
        try:
            d = self.sjob.result()
        except Exception as exc:
            return _job_failed(self.task, self.job_id, exc)
        d["log_tail"] = tuple(d.get("log_tail") or ())
        return RunOutcome(**d)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.sjob.cancel(check=False)

    kill = stop


def _job_failed(task: RunTask, job_id: str, exc: BaseException) -> RunOutcome:
    """A job that ended without returning: complete the run's state file for it."""
    paths = task.paths
    state = read_state(paths.state_file) or {}
    claim = read_claim(paths.claim_file)
    if claim is not None and claim.job_id == job_id:
        with contextlib.suppress(OSError):
            # Its process is gone (the job ended), even when it ran on another host.
            paths.claim_file.unlink()
    elif claim is not None:
        break_stale_claim(paths)
    text = str(exc).strip().splitlines()
    error = f"slurm job {job_id} failed: {type(exc).__name__}: {text[0] if text else ''}"
    if state.get("job_id") == job_id and state.get("state") in ("failed", "interrupted"):
        status = state["state"]
    else:
        status = "failed"
        now = time.time()
        state = dict(state)
        state.update(
            state="failed",
            job_id=job_id,
            ended=now_iso(now),
            ended_ts=now,
            exit_code=None,
            failed_stage=state.get("stage"),
            error=error,
            log_tail=log_tail(paths.log_file),
        )
        with contextlib.suppress(OSError):
            _write_state(paths.state_file, state)
    return RunOutcome.for_task(
        task,
        status,
        reason=f"stage {state.get('failed_stage')}: {state.get('error')}",
        failed_stage=state.get("failed_stage"),
        error=state.get("error"),
        log_tail=tuple(state.get("log_tail") or ()),
        job_id=job_id,
    )


class SlurmExecutor(Executor):
    """One Slurm job per run, submitted with submitit.

    Parameters
    ----------
    folder
        submitit's job folder (logs, pickles); default ``<collection>/slurm_logs``.
    partition, time, gpus_per_node, mem_gb, cpus_per_task, account, qos, constraint
        Job resources (``time`` in minutes; default 24 h).
    additional
        Extra sbatch parameters, e.g. ``{"mail-type": "END"}``.
    cluster
        ``slurm`` (default), ``local`` (local processes, same code path) or ``debug``.
    wait
        Wait for the jobs and report their outcomes (default); False returns
        right after submission (``lfads-runs status`` follows them).
    requeue
        Requeue a job that times out or is preempted (it resumes from its checkpoint).
    device
        Engine device; default ``cuda`` when the job has GPUs, else automatic.
    """

    name = "slurm"
    summary = "one Slurm job per run, through submitit (extra slurm)"
    section = "slurm"
    options = (
        ExecutorOption(
            "folder", "path", None, "submitit log folder (default <collection>/slurm_logs)"
        ),
        ExecutorOption("partition", "str", None, "Slurm partition", flag="--partition"),
        ExecutorOption("time", "int", 24 * 60, "time limit in minutes", minimum=1, flag="--time"),
        ExecutorOption(
            "gpus_per_node", "int", None, "GPUs per job", minimum=0, flag="--gpus-per-node"
        ),
        ExecutorOption("mem_gb", "float", None, "memory per job in GB", minimum=0, flag="--mem-gb"),
        ExecutorOption(
            "cpus_per_task",
            "int",
            None,
            "CPUs per job (default: threads)",
            minimum=1,
            flag="--cpus-per-task",
        ),
        ExecutorOption("account", "str", None, "Slurm account", flag="--account"),
        ExecutorOption("qos", "str", None, "quality of service", flag="--qos"),
        ExecutorOption("constraint", "str", None, "node constraint", flag="--constraint"),
        ExecutorOption("additional", "mapping", None, "extra sbatch parameters (mapping)"),
        ExecutorOption(
            "cluster",
            "choice",
            "slurm",
            "submitit cluster (local/debug: run the Slurm path on this machine)",
            choices=_CLUSTERS,
            flag="--slurm-cluster",
        ),
        ExecutorOption("wait", "bool", True, "wait for the jobs and report their outcomes"),
        ExecutorOption("requeue", "bool", True, "requeue jobs that time out or are preempted"),
        ExecutorOption(
            "device",
            "str",
            None,
            "engine device (default: cuda when the job has GPUs)",
            in_yaml=False,
        ),
    )
    detach_on_interrupt = True

    def __init__(
        self,
        *,
        folder: str | os.PathLike | None = None,
        partition: str | None = None,
        time: int | None = None,
        gpus_per_node: int | None = None,
        mem_gb: float | None = None,
        cpus_per_task: int | None = None,
        account: str | None = None,
        qos: str | None = None,
        constraint: str | None = None,
        additional: Mapping[str, Any] | None = None,
        cluster: str | None = None,
        wait: bool = True,
        requeue: bool = True,
        device: str | None = None,
    ):
        submitit = require("submitit", "the slurm executor")
        self.cluster = cluster or "slurm"
        if self.cluster not in _CLUSTERS:
            raise ConfigError(f"slurm cluster must be one of {_CLUSTERS}, got {cluster!r}")
        if folder is None:
            raise ConfigError("the slurm executor needs a log folder (slurm.folder)")
        self.folder = Path(folder)
        self.wait = bool(wait)
        self.requeue = bool(requeue)
        self.device = device
        self.cpus_per_task = cpus_per_task
        self.gpus_per_node = gpus_per_node
        self.poll_interval = 5.0 if self.cluster == "slurm" else 0.25
        params: dict[str, Any] = {
            "timeout_min": int(time) if time is not None else 24 * 60,
            "gpus_per_node": gpus_per_node,
            "mem_gb": mem_gb,
            "cpus_per_task": cpus_per_task,
            "slurm_partition": partition,
            "slurm_account": account,
            "slurm_qos": qos,
            "slurm_constraint": constraint,
            "slurm_additional_parameters": dict(additional) if additional else None,
        }
        params = {k: v for k, v in params.items() if v is not None}
        if self.cluster != "slurm":  # AutoExecutor would reject slurm_* for other clusters
            params = {k: v for k, v in params.items() if not k.startswith("slurm_")}
        self.params = params
        self.folder.mkdir(parents=True, exist_ok=True)
        self._submitit = submitit
        try:
            self.ex = submitit.AutoExecutor(folder=self.folder / "%j", cluster=self.cluster)
            self.ex.update_parameters(**params)
        except (ValueError, NameError, AssertionError, RuntimeError) as exc:
            raise ConfigError(f"slurm executor: {exc}") from None

    @classmethod
    def available(cls) -> bool:
        return has_module("submitit")

    @classmethod
    def settings(cls, rc: RunCollection, queue: QueueOptions) -> dict[str, Any]:
        """The ``slurm:`` section; the log folder in the collection; ``threads`` CPUs per job."""
        out = super().settings(rc, queue)
        out.setdefault("folder", str(rc.layout.slurm_log_dir))
        if queue.threads is not None:
            out.setdefault("cpus_per_task", queue.threads)
        return out

    def describe(self) -> str:
        res = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"slurm ({self.cluster}): one job per run ({res})"

    def submit(self, task: RunTask, run: Run) -> SlurmJob:
        device = task.device or self.device or ("cuda" if self.gpus_per_node else None)
        task = attrs.evolve(task, threads=task.threads or self.cpus_per_task, device=device)
        paths = task.paths
        paths.path.mkdir(parents=True, exist_ok=True)
        previous = read_state(paths.state_file) or {}
        token = f"{hostname()}:{os.getpid()}:{time.time()}"
        pending = {
            "state": "submitted",
            "executor": "slurm",
            "cluster": self.cluster,
            "submit_host": hostname(),
            "submitted": now_iso(),
            "submit_token": token,
            "job_id": None,
            "run_spec": task.run_spec,
            "param_index": task.param_index,
            "param_hash": task.param_hash,
            "attempt": previous.get("attempt", 0),
        }
        _write_state(paths.state_file, pending)
        self.ex.update_parameters(name=f"lfads_{task.run_spec}_{task.param_hash}")
        sjob = self.ex.submit(_checkpointable(self.requeue), task.to_json())
        # Record the job id unless the job has already started and written its own state.
        current = read_state(paths.state_file) or {}
        if current.get("submit_token") == token and current.get("state") == "submitted":
            _write_state(paths.state_file, dict(pending, job_id=str(sjob.job_id)))
        return SlurmJob(task, sjob, self)


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
