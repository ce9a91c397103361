"""The default executor: runs as subprocesses of this machine, GPUs shared out by slot.

Each run is one process whose stdout and stderr are appended to the run's
``lfads.out``. Slots decide what runs at once:

- with GPUs, ``runs_per_gpu`` slots per GPU; a run sees only its GPU
  (``CUDA_VISIBLE_DEVICES``), optionally capped by ``max_parallel``;
- without GPUs, ``max_parallel`` slots, the CPU threads divided among them
  (``OMP_NUM_THREADS`` and ``torch.set_num_threads`` in the child).

Children run in their own session, so Ctrl-C reaches only the queue, which then
stops them with SIGTERM (each run records "interrupted" and stays resumable).
Children also stop by themselves when the queue process dies (even by SIGKILL).

Start-up: importing torch takes over a second, which would dominate short runs.
By default (``start_method="forkserver"``) children are forked from a server
process that imported the engine once (:mod:`._forkserver`), so a run starts in
milliseconds; each run is still its own process with its own environment, log
and exit status. ``start_method="subprocess"`` starts a fresh interpreter per
run (``python -m lfads_runs.pipeline``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from .._procs import CAN_FORK, kill_process, stop_process
from ..claims import hostname
from ..exceptions import ConfigError
from ..pipeline import RunOutcome, RunTask
from ._forkserver import ForkServer, openmp_env
from .base import Executor, Job, outcome_from_exit
from .gpus import detect_gpus, parse_gpus
from .options import ExecutorOption

if TYPE_CHECKING:
    from ..collection import Run

__all__ = [
    "LocalExecutor",
    "LocalJob",
    "Slot",
    "detect_gpus",
    "parallel_cpu_runs",
    "parse_gpus",
    "START_METHODS",
]

START_METHODS = ("forkserver", "subprocess")


@attrs.frozen
class Slot:
    """Room for one run: a GPU (or None for CPU) and its thread count."""

    index: int
    gpu: str | None
    threads: int


class LocalJob(Job):
    """A run in a child process (forked by the fork server, or a ``subprocess.Popen``)."""

    def __init__(
        self, task: RunTask, pid: int, exit_code: Any, slot: Slot, executor: LocalExecutor
    ):
        super().__init__(task)
        self.pid = int(pid)
        self._exit_code = exit_code  #: callable -> int | None
        self.slot = slot
        self.job_id = str(self.pid)
        self._executor = executor
        self._stop_requested = False
        where = f"GPU {slot.gpu}" if slot.gpu is not None else "cpu"
        self.detail = f"pid {self.pid}, {where}, {slot.threads} thread{'s' * (slot.threads > 1)}"

    def poll(self) -> RunOutcome | None:
        code = self._exit_code()
        if code is None:
            return None
        self._executor._release(self.slot)
        return outcome_from_exit(self.task, code, pid=self.pid, stop_requested=self._stop_requested)

    def stop(self) -> None:
        self._stop_requested = True
        stop_process(self.pid)

    def kill(self) -> None:
        self._stop_requested = True
        kill_process(self.pid)


def parallel_cpu_runs(n_runs: int, cores: int) -> int:
    """Runs at once for ``n_runs`` runs of similar size on ``cores`` cores (no GPU).

    Up to ``cores`` runs: all of them. More: n between ``cores`` and ``2 * cores``
    (at most twice as many processes as cores) that leaves the least of the last
    round idle, the smallest such. n single-threaded runs share the cores, so a
    round of them takes n / cores times one run's time, and the sweep about
    ceil(n_runs / n) * n / cores: 8 runs on 3 cores go 4 at a time (2 rounds of
    4/3, against 3 rounds of 1 with 3 at a time).
    """
    if n_runs <= cores:
        return max(1, n_runs)
    cands = range(cores, min(n_runs, 2 * cores) + 1)
    return min(cands, key=lambda n: (-(-n_runs // n) * n, n))


class LocalExecutor(Executor):
    """Runs as subprocesses on this machine.

    Parameters
    ----------
    gpus
        GPU ids (``"0,1"`` or a list); None detects them (``CUDA_VISIBLE_DEVICES``
        or ``nvidia-smi``); ``[]`` forces the CPU.
    runs_per_gpu
        Runs sharing one GPU (default 1).
    max_parallel
        Upper bound on runs at once. Default: one per GPU slot; on CPU-only
        machines what gives the most runs per hour (:meth:`plan`: fewer runs than
        cores share the cores as threads, more run single-threaded, about one per core).
    threads
        Torch threads per run. Default: the CPU cores divided among the slots.
    python
        Interpreter of the children (default: this one; another one implies
        ``start_method="subprocess"``).
    start_method
        ``forkserver`` (default where ``os.fork`` exists: fork each run from a
        server that imported the engine once) or ``subprocess`` (a fresh
        interpreter per run; the default on Windows).
    """

    name = "local"
    summary = "subprocesses of this machine, GPUs shared out by slot (default)"
    options = (
        ExecutorOption(
            "gpus", "any", None, "GPU ids, e.g. 0,1 ('none': CPU only)", validator=parse_gpus
        ),
        ExecutorOption("runs_per_gpu", "int", 1, "runs sharing one GPU", minimum=1),
        ExecutorOption("max_parallel", "int", None, "at most this many runs at once", minimum=1),
        ExecutorOption("threads", "int", None, "torch threads per run", minimum=1),
        ExecutorOption("python", "str", None, "interpreter of the runs (default: this one)"),
        ExecutorOption("device", "str", None, "engine device (default: CUDA when available)"),
        ExecutorOption("start_method", "choice", None, "how runs start", choices=START_METHODS),
    )
    poll_interval = 0.02

    def __init__(
        self,
        *,
        gpus: str | Sequence[str | int] | None = None,
        runs_per_gpu: int | None = None,
        max_parallel: int | None = None,
        threads: int | None = None,
        python: str | None = None,
        device: str | None = None,
        start_method: str | None = None,
    ):
        runs_per_gpu = 1 if runs_per_gpu is None else int(runs_per_gpu)
        if runs_per_gpu < 1:
            raise ConfigError(f"runs_per_gpu must be >= 1, got {runs_per_gpu}")
        if max_parallel is not None and int(max_parallel) < 1:
            raise ConfigError(f"max_parallel must be >= 1, got {max_parallel}")
        if threads is not None and int(threads) < 1:
            raise ConfigError(f"threads must be >= 1, got {threads}")
        cpu_only = device is not None and str(device).startswith("cpu")
        gpu_list = parse_gpus(gpus)
        if gpu_list is None:
            gpu_list = [] if cpu_only else detect_gpus()
        elif cpu_only and gpu_list:
            raise ConfigError(f"device {device!r} contradicts gpus {gpu_list}")
        cores = os.cpu_count() or 1
        if gpu_list:
            order = [g for _ in range(runs_per_gpu) for g in gpu_list]  # spread over GPUs first
            n = len(order) if max_parallel is None else min(len(order), int(max_parallel))
            per = int(threads) if threads else max(1, cores // n)
            self.slots = [Slot(i, order[i], per) for i in range(n)]
        else:
            n = int(max_parallel) if max_parallel else cores
            per = int(threads) if threads else max(1, cores // n)
            self.slots = [Slot(i, None, per) for i in range(n)]
        # Without an explicit max_parallel on the CPU, plan() fits the slots to the work.
        self._auto_cpu = not gpu_list and max_parallel is None
        self._threads = int(threads) if threads else None
        self._cores = cores
        self.gpus = gpu_list
        self.device = device
        self.python = python or sys.executable
        method = start_method or ("forkserver" if CAN_FORK else "subprocess")
        if method not in START_METHODS:
            raise ConfigError(f"start_method must be one of {START_METHODS}, got {method!r}")
        if method == "forkserver" and not CAN_FORK:
            raise ConfigError(
                "start_method 'forkserver' needs os.fork, which this OS lacks; "
                "use start_method 'subprocess' (the default here)"
            )
        self.start_method = method
        self._server: ForkServer | None = None
        self._free = list(self.slots)

    def plan(self, n_runs: int) -> None:
        """CPU default: runs at once and threads per run for the most runs per hour.

        Up to one run per core: every run at once, the cores shared out as threads
        (a lone run gets them all; 3 runs on 8 cores get 3, 3 and 2). More runs than
        cores: single-threaded runs (separate runs never wait for each other, a run's
        threads do at every step), as many at once as wastes least of the last round
        (:func:`parallel_cpu_runs`).
        """
        if self._auto_cpu and n_runs > 0:
            n = parallel_cpu_runs(n_runs, self._cores)
            c = self._cores
            per = [self._threads or max(1, c // n + (i < c % n)) for i in range(n)]
            self.slots = [Slot(i, None, per[i]) for i in range(n)]
            self._free = list(self.slots)

    def capacity(self) -> int:
        return len(self._free)

    def _release(self, slot: Slot) -> None:
        if slot not in self._free:
            self._free.append(slot)
            self._free.sort(key=lambda s: s.index)

    def describe(self) -> str:
        n = len(self.slots)
        per = "-".join(sorted({str(s.threads) for s in self.slots}, key=int))
        if self.gpus:
            return f"local: {n} parallel runs on GPUs {','.join(self.gpus)}, {per} threads each"
        return f"local: {n} parallel run{'s' * (n > 1)} on the CPU, {per} thread{'s' * (per != '1')} each"

    def child_env(self, slot: Slot) -> dict[str, str]:
        env = openmp_env(os.environ, shared=len(self.slots) > 1)
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(slot.threads)
        if slot.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = slot.gpu
        elif self.gpus == [] and (self.device is None or self.device.startswith("cpu")):
            env["CUDA_VISIBLE_DEVICES"] = ""  # CPU run: keep CUDA out of it
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def command(self, task: RunTask) -> list[str]:
        return [
            self.python,
            "-m",
            "lfads_runs.pipeline",
            "--task-json",
            task.to_json(),
            "--executor",
            self.name,
            "--queue-pid",
            str(os.getpid()),
            "--queue-host",
            hostname(),
            "--watch-parent",
        ]

    def _fork_server(self) -> ForkServer:
        if self._server is None or not self._server.alive():
            self._server = ForkServer(self.python, shared=len(self.slots) > 1)
        return self._server

    def submit(self, task: RunTask, run: Run) -> LocalJob:
        if not self._free:
            raise RuntimeError("no free slot")  # the scheduler checks capacity() first
        slot = self._free.pop(0)
        device = task.device or self.device or ("cuda" if slot.gpu is not None else "cpu")
        task = attrs.evolve(task, threads=slot.threads, device=device)
        paths = task.paths
        paths.path.mkdir(parents=True, exist_ok=True)
        env = self.child_env(slot)
        try:
            if self.start_method == "forkserver" and task.engine == "torch":
                server = self._fork_server()
                pid = server.start(
                    task.to_json(), str(paths.log_file), env, hostname(), os.getpid()
                )
                return LocalJob(task, pid, lambda: server.exit_code(pid), slot, self)
            with open(paths.log_file, "ab") as log:  # append: keep earlier attempts
                proc = subprocess.Popen(
                    self.command(task),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            return LocalJob(task, proc.pid, proc.poll, slot, self)
        except BaseException:
            self._release(slot)
            raise

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
