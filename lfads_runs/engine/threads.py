"""Fewer torch threads while other processes keep this machine's cores busy.

Torch's CPU kernels split each operation among all their threads and wait for the
slowest. When another busy process shares the cores, the system suspends one of
those threads now and then and every operation waits for it: on a 2-core machine
beside one busy process, 2 threads trained at 4.4 steps/s against 19.4 for 1
thread (``bench_train.py --contention``). No fixed OpenMP setting fixes this
without costing the quiet case (docs/running.md has the GOMP_SPINCOUNT table).

So the training loop and posterior sampling ask a :class:`ThreadGovernor` once per
step. It samples how many threads of *other* processes are runnable
(``procs_running`` of ``/proc/stat`` minus this process's own running threads),
averages that over about half a second, and uses the cores the others leave free,
between 1 and the thread count the run started with. On a quiet machine it never
changes anything. The rule reads the machine's load, not our own step times, so it
needs no trial steps at other thread counts.

Torch's reductions and matrix products sum in an order that depends on the thread
count, so a run whose thread count changed agrees with one that did not only to
float rounding. Bit-identical reruns under load need a fixed count:
``LFADS_RUNS_ADAPT_THREADS=0`` (or one thread). Linux only: elsewhere, or where
``/proc`` cannot be read, the count stays fixed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from .._coerce import to_bool
from .._procs import usable_cores
from ..exceptions import ConfigError

__all__ = ["ENV_VAR", "ThreadGovernor", "adaptive_threads_enabled", "other_running_threads"]

#: environment variable: "auto" (default) / on / off
ENV_VAR = "LFADS_RUNS_ADAPT_THREADS"
_PROC = Path("/proc")


def adaptive_threads_enabled(environ: dict[str, str] | None = None) -> bool:
    """Whether :data:`ENV_VAR` allows adapting the thread count (default: yes)."""
    value = (os.environ if environ is None else environ).get(ENV_VAR, "auto").strip()
    if value.lower() in ("", "auto"):
        return True
    try:
        return to_bool(value)
    except ValueError:
        raise ConfigError(f"{ENV_VAR}={value!r}: expected auto, 1 or 0") from None


def _running_total(proc: Path) -> int:
    for line in (proc / "stat").read_text().splitlines():
        if line.startswith("procs_running "):
            return int(line.split()[1])
    raise OSError(f"{proc / 'stat'} has no procs_running line")


def _running_own(proc: Path) -> int:
    n = 0
    for stat in (proc / "self" / "task").glob("*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the thread ended meanwhile
            continue
        # "pid (comm) S ...": comm may hold spaces or parentheses, the state follows the last ")".
        if text[text.rfind(")") + 2 : text.rfind(")") + 3] == "R":
            n += 1
    return n


def other_running_threads(proc: Path = _PROC) -> int | None:
    """Runnable threads of other processes right now, or None where /proc cannot tell."""
    try:
        return max(0, _running_total(proc) - _running_own(proc))
    except (OSError, ValueError, IndexError):
        return None


class ThreadGovernor:
    """Sets torch's intra-op thread count to the cores other processes leave free.

    Parameters
    ----------
    max_threads
        The most threads to use (default: torch's count when the governor is made).
    interval
        Seconds of samples behind each decision.
    log
        Called with a line whenever the count changes.
    enabled
        None: :func:`adaptive_threads_enabled` and a CPU run decide.
    sample, set_threads, get_threads, clock, cores
        Replaceable for tests: the load sampler, torch's setters, the clock and
        the number of usable cores.
    """

    #: at least this many samples per decision: one sample is a moment, not a load
    MIN_SAMPLES = 4
    #: hysteresis in cores: a count changes only when the load is clearly past its edge
    MARGIN = 0.2

    def __init__(
        self,
        max_threads: int | None = None,
        *,
        interval: float = 0.5,
        log: Callable[[str], object] | None = None,
        enabled: bool | None = None,
        sample: Callable[[], int | None] | None = None,
        set_threads: Callable[[int], None] | None = None,
        get_threads: Callable[[], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
        cores: int | None = None,
    ) -> None:
        if set_threads is None or get_threads is None:
            import torch

            set_threads = set_threads or torch.set_num_threads
            get_threads = get_threads or torch.get_num_threads
        self._set = set_threads
        self._get = get_threads
        self.max_threads = max(1, int(max_threads or get_threads()))
        self.cores = cores or max(1, usable_cores() or 1)
        self.interval = float(interval)
        self._log = log
        self._sample = sample or other_running_threads
        self._clock = clock
        if enabled is None:
            enabled = adaptive_threads_enabled()
        self.enabled = bool(enabled) and self.max_threads > 1 and self._sample() is not None
        self.threads = self.max_threads
        self.changes = 0
        self._reset()
        if self.enabled:
            self._first_look()

    def _first_look(self) -> None:
        """Decide before the first step from a few samples taken at once: a step on too
        many threads can take seconds on a crowded machine. (A busy process is
        runnable in every sample; a brief one is caught by the per-step samples.)"""
        samples = [v for v in (self._sample() for _ in range(self.MIN_SAMPLES)) if v is not None]
        if samples:
            self._decide(sum(samples) / len(samples))

    @classmethod
    def for_device(cls, device: object, log: Callable[[str], object] | None = None):
        """A governor for a run on ``device`` (one that does nothing off the CPU)."""
        on_cpu = getattr(device, "type", str(device)) == "cpu"
        return cls(log=log, enabled=None if on_cpu else False)

    def _reset(self) -> None:
        self._t0 = self._clock()
        self._last = -float("inf")
        self._sum = 0
        self._n = 0

    def tick(self) -> int:
        """Take one sample (call once per step); returns the thread count in use.

        Samples are at least ``interval / 8`` apart, so that reading /proc costs
        nothing next to short steps on many cores.
        """
        if not self.enabled:
            return self.threads
        now = self._clock()
        if now - self._last < self.interval / (2 * self.MIN_SAMPLES):
            return self.threads
        self._last = now
        others = self._sample()
        if others is not None:
            self._sum += others
            self._n += 1
        if self._n >= self.MIN_SAMPLES and self._clock() - self._t0 >= self.interval:
            self._decide(self._sum / self._n)
            self._reset()
        return self.threads

    def _decide(self, others: float) -> None:
        free = self.cores - others
        # Move only when the free cores are clearly past the current count's edge.
        if free < self.threads - 0.5 - self.MARGIN or free > self.threads + 0.5 + self.MARGIN:
            want = min(self.max_threads, max(1, round(free)))
            if want != self.threads:
                if self._log is not None:
                    self._log(
                        f"Threads: {self.threads} -> {want} (other processes keep "
                        f"{others:.1f} of {self.cores} cores busy)."
                    )
                self.threads = want
                self.changes += 1
                self._set(want)

    def restore(self) -> None:
        """Back to the starting count (when the run ends, for whoever uses torch next)."""
        if self.threads != self.max_threads:
            self._set(self.max_threads)
            self.threads = self.max_threads
