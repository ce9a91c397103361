"""In-process executor: runs one after another in this process (breakpoints work).

Output goes to each run's ``lfads.out`` and is echoed on stderr. Ctrl-C stops
the current run cleanly (it records "interrupted" and stays resumable).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..claims import hostname
from ..pipeline import RunOutcome, RunTask, execute
from .base import Executor, Job
from .options import ExecutorOption

if TYPE_CHECKING:
    from ..collection import Run

__all__ = ["DebugExecutor"]


class _DoneJob(Job):
    def __init__(self, task: RunTask, outcome: RunOutcome):
        super().__init__(task)
        self.outcome = outcome
        self.detail = "in process"

    def poll(self) -> RunOutcome:
        return self.outcome


class DebugExecutor(Executor):
    """Runs each run in this process, sequentially.

    Parameters
    ----------
    threads
        Torch threads (default: torch's own choice).
    device
        Default device of the runs (None: CUDA when available, else CPU).
    echo
        Print each run's log lines on stderr too (default True).
    """

    name = "debug"
    summary = "one run at a time in this process (breakpoints work)"
    options = (
        ExecutorOption("threads", "int", None, "torch threads", minimum=1),
        ExecutorOption("device", "str", None, "engine device (default: CUDA when available)"),
        ExecutorOption("echo", "bool", True, "print each run's log lines on stderr too"),
    )
    poll_interval = 0.0
    interrupt_stops_queue = True  # Ctrl-C lands in the run (this process): stop the queue too

    def __init__(self, *, threads: int | None = None, device: str | None = None, echo: bool = True):
        self.threads = threads
        self.device = device
        self.echo = echo

    def describe(self) -> str:
        return "debug: one run at a time in this process"

    def submit(self, task: RunTask, run: Run) -> Job:
        import attrs

        task = attrs.evolve(
            task, threads=task.threads or self.threads, device=task.device or self.device
        )
        outcome = execute(
            task,
            run=run,
            executor=self.name,
            queue_host=hostname(),
            queue_pid=os.getpid(),
            echo=self.echo,
        )
        return _DoneJob(task, outcome)
