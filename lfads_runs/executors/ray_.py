"""Ray executor (extra ``ray``): one Ray task per run, with fractional GPUs.

Each task runs :func:`lfads_runs.pipeline.execute` in a Ray worker with the same
claim / done-marker / resume rules as the local executor; its output is appended
to the run's ``lfads.out``. Ray sets ``CUDA_VISIBLE_DEVICES`` for each task from
its ``num_gpus`` request. Ray resources are logical: two runs asking for 0.5 GPU
share one device and can run each other out of GPU memory.

Without ``address``, a local Ray instance is started for the queue and shut
down after it; with one (``"auto"`` or ``"ray://host:10001"``) the runs go to
that cluster, which is left running.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from .._optional import has_module, require
from ..claims import break_stale_claim, now_iso
from ..pipeline import RunOutcome, RunTask, execute
from ..runstate import log_tail, read_state, write_state
from .base import Executor, Job
from .options import ExecutorOption, QueueOptions

if TYPE_CHECKING:
    from ..collection import Run, RunCollection

__all__ = ["RayExecutor", "RayJob", "run_task"]


def run_task(task_json: str) -> dict[str, Any]:
    """The body of one Ray task: execute the run, return its outcome as a dict."""
    import ray

    task = RunTask.from_json(task_json)
    job_id = None
    with contextlib.suppress(Exception):
        job_id = ray.get_runtime_context().get_task_id()
    outcome = execute(task, executor="ray", job_id=job_id, redirect_output=True)
    return outcome.as_dict()


_REMOTE: Any = None


def _remote():
    global _REMOTE
    if _REMOTE is None:
        ray = require("ray", "the ray executor")
        _REMOTE = ray.remote(max_retries=0)(run_task)
    return _REMOTE


class RayJob(Job):
    def __init__(self, task: RunTask, ref: Any, ray: Any, detail: str):
        super().__init__(task)
        self.ref = ref
        self.ray = ray
        self.job_id = ref.hex() if hasattr(ref, "hex") else str(ref)
        self.detail = detail

    def poll(self) -> RunOutcome | None:
        ready, _ = self.ray.wait([self.ref], timeout=0)
        if not ready:
            return None
        try:
            d = self.ray.get(self.ref)
        except Exception as exc:  # worker crash, cancellation
            return _task_failed(self.task, self.job_id, exc)
        d["log_tail"] = tuple(d.get("log_tail") or ())
        return RunOutcome(**d)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.ray.cancel(self.ref)  # KeyboardInterrupt in the task: it records "interrupted"

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.ray.cancel(self.ref, force=True)


def _task_failed(task: RunTask, job_id: str, exc: BaseException) -> RunOutcome:
    paths = task.paths
    break_stale_claim(paths)  # the worker process is gone when it crashed
    state = dict(read_state(paths.state_file) or {})
    cancelled = type(exc).__name__ == "TaskCancelledError"
    status = "interrupted" if cancelled else "failed"
    if state.get("state") not in ("failed", "interrupted"):
        now = time.time()
        lines = str(exc).strip().splitlines()
        state.update(
            state=status,
            ended=now_iso(now),
            ended_ts=now,
            failed_stage=None if cancelled else state.get("stage"),
            error=None
            if cancelled
            else f"ray task failed: {type(exc).__name__}: " + (lines[-1] if lines else ""),
            log_tail=log_tail(paths.log_file),
        )
        with contextlib.suppress(OSError):
            write_state(paths.state_file, state)
    else:
        status = state["state"]
    return RunOutcome.for_task(
        task,
        status,
        reason=f"stage {state.get('failed_stage')}: {state.get('error')}"
        if status == "failed"
        else "cancelled",
        failed_stage=state.get("failed_stage"),
        error=state.get("error"),
        log_tail=tuple(state.get("log_tail") or ()),
        job_id=job_id,
    )


class RayExecutor(Executor):
    """One Ray task per run.

    Parameters
    ----------
    address
        Ray cluster to join; None starts a local instance for this queue.
    num_gpus
        GPUs per run (fractions allowed, e.g. 0.5 = two runs per GPU); default 0.
    num_cpus
        CPUs per run (also the run's torch threads); default 1.
    device
        Engine device; default ``cuda`` when the run has GPUs, else automatic.
    init
        Extra ``ray.init`` arguments (e.g. ``num_cpus``/``num_gpus`` of a local
        instance, ``_temp_dir``).
    """

    name = "ray"
    summary = "one Ray task per run, fractional GPUs allowed (extra ray)"
    section = "ray"
    options = (
        ExecutorOption(
            "address",
            "str",
            None,
            "Ray cluster: 'auto' or 'ray://host:10001' (default: a local Ray for the queue)",
            flag="--ray-address",
        ),
        ExecutorOption(
            "num_gpus", "float", 0.0, "GPUs per run (default 1/runs_per_gpu)", minimum=0
        ),
        ExecutorOption("num_cpus", "float", 1.0, "CPUs per run (default: threads)", minimum=0),
        ExecutorOption(
            "device",
            "str",
            None,
            "engine device (default: cuda when the run has GPUs)",
            in_yaml=False,
        ),
        ExecutorOption("init", "mapping", None, "extra ray.init arguments for a local instance"),
    )
    poll_interval = 0.1

    def __init__(
        self,
        *,
        address: str | None = None,
        num_gpus: float | None = None,
        num_cpus: float | None = None,
        device: str | None = None,
        init: Mapping[str, Any] | None = None,
    ):
        self.ray = require("ray", "the ray executor")
        self.address = address
        self.num_gpus = float(num_gpus or 0.0)
        self.num_cpus = float(num_cpus or 1.0)
        self.device = device
        self._started = False
        if not self.ray.is_initialized():
            kwargs = {"include_dashboard": False, "log_to_driver": False, **dict(init or {})}
            if address:
                kwargs["address"] = address
            self.ray.init(**kwargs)
            self._started = address is None

    @classmethod
    def available(cls) -> bool:
        return has_module("ray")

    @classmethod
    def settings(cls, rc: RunCollection, queue: QueueOptions) -> dict[str, Any]:
        """The ``ray:`` section; ``runs_per_gpu`` and ``threads`` size each task."""
        out = super().settings(rc, queue)
        if queue.runs_per_gpu is not None:
            out.setdefault("num_gpus", 1.0 / queue.runs_per_gpu)
        if queue.threads is not None:
            out.setdefault("num_cpus", queue.threads)
        return out

    def describe(self) -> str:
        where = self.address or "a local Ray instance"
        return (
            f"ray ({where}): one task per run, {self.num_gpus:g} GPU and {self.num_cpus:g} CPU each"
        )

    def submit(self, task: RunTask, run: Run) -> RayJob:
        device = task.device or self.device or ("cuda" if self.num_gpus > 0 else None)
        threads = task.threads or max(1, int(self.num_cpus))
        task = attrs.evolve(task, device=device, threads=threads)
        task.paths.path.mkdir(parents=True, exist_ok=True)
        ref = (
            _remote()
            .options(
                num_gpus=self.num_gpus,
                num_cpus=self.num_cpus,
                name=f"lfads_{task.run_spec}_{task.param_hash}",
            )
            .remote(task.to_json())
        )
        return RayJob(task, ref, self.ray, f"ray, {self.num_gpus:g} GPU, {self.num_cpus:g} CPU")

    def close(self) -> None:
        if self._started and self.ray.is_initialized():
            with contextlib.suppress(Exception):
                self.ray.shutdown()
            self._started = False
