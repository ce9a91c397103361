"""Overhead of the run queue and the gain of running tiny runs in parallel.

Prints::

    scheduling overhead per run (forkserver): median 0.04 s, max 0.06 s over 7 gaps
    scheduling overhead per run (subprocess): median 1.52 s, max 1.60 s over 7 gaps
    queue start to first run (forkserver): 1.71 s (the fork server imports torch once)
    8 tiny runs, max_parallel 1: 14.2 s wall (2 threads per run)
    8 tiny runs, max_parallel 2: 9.1 s wall (1 thread per run), 1.56x

Scheduling overhead is the gap between one run's end and the next run's start
with ``max_parallel 1``, from the runs' state files: noticing the exit,
recording the outcome (state and queue files), starting the next process and
its start-up up to the pipeline (claim included in neither). Both ways of
starting a run are measured: forked from a server that imported the engine once
(the default) and a fresh interpreter per run. The wall times cover the whole
queue (inputs prepared beforehand). Runs: 2 run specs x 4 parameter sets of a
tiny model (T = 50, 12/10 neurons, generator 16) for ``--epochs`` epochs.

Usage: ``python benchmarks/bench_queue.py [--epochs 20] [--runs 8]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _queue_helpers import load, make_config, state  # noqa: E402

from lfads_runs.executors.local import LocalExecutor  # noqa: E402


def collection(root: Path, runs: int, epochs: int):
    n_params = max(1, runs // 2)
    rc = load(make_config(root, n_params=n_params, epochs=epochs))
    chosen = rc.all_runs[:runs]
    rc.prepare(chosen)
    return rc, chosen


def run_queue(root: Path, runs: int, epochs: int, **executor):
    rc, chosen = collection(root, runs, epochs)
    ex = LocalExecutor(gpus=[], **executor)
    t0 = time.time()
    res = rc.train(chosen, executor=ex, quiet=True)
    wall = time.time() - t0
    if res.n_done != len(chosen):
        raise SystemExit(f"benchmark runs failed: {res.summary()}")
    spans = sorted((state(r)["started_ts"], state(r)["ended_ts"]) for r in chosen)
    return wall, spans, t0, ex


def gaps(spans):
    return [b[0] - a[1] for a, b in zip(spans, spans[1:], strict=False)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--runs", type=int, default=8)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        first = {}
        for method in ("forkserver", "subprocess"):
            _, spans, t0, _ = run_queue(
                tmp / f"overhead_{method}", args.runs, 3, max_parallel=1, start_method=method
            )
            g = gaps(spans)
            first[method] = spans[0][0] - t0
            print(
                f"scheduling overhead per run ({method}): median {statistics.median(g):.2f} s, "
                f"max {max(g):.2f} s over {len(g)} gaps",
                flush=True,
            )
        print(
            f"queue start to first run (forkserver): {first['forkserver']:.2f} s "
            "(the fork server imports torch once per queue)"
        )
        walls = {}
        for n in (1, 2):
            wall, _, _, ex = run_queue(tmp / f"parallel{n}", args.runs, args.epochs, max_parallel=n)
            walls[n] = wall
            threads = ex.slots[0].threads
            extra = f", {walls[1] / wall:.2f}x" if n > 1 else ""
            print(
                f"{args.runs} tiny runs, max_parallel {n}: {wall:.1f} s wall "
                f"({threads} thread{'s' * (threads > 1)} per run){extra}",
                flush=True,
            )


if __name__ == "__main__":
    main()
