"""Overhead of the run queue and the gain of running tiny runs in parallel.

Prints::

    in-process reference (debug executor): 8 runs in 4.1 s
    scheduling overhead per run (forkserver): 0.08 s (wall 4.8 s; gaps between runs median 0.07 s)
    scheduling overhead per run (subprocess): 1.45 s (wall 15.7 s; gaps between runs median 0.6 s)
    8 tiny runs, max_parallel 1: 14.2 s wall (2 threads per run)
    8 tiny runs, max_parallel 2: 9.1 s wall (1 thread per run), 1.56x

Scheduling overhead per run is the extra wall time of the local queue over the
same runs done one after another in this process (``--executor debug``, which
imports torch once, as the fork server does), divided by the number of runs,
with ``max_parallel 1``: it covers noticing a run's end, recording its outcome
(state and queue files), starting the next process and that process's start-up.
Both ways of starting a run are measured: forked from a server that imported
the engine once (the default) and a fresh interpreter per run. The gaps are the
times between one run's end and the next run's start in the state files (for a
fresh interpreter they exclude its torch import, which happens inside the run).
Runs: 2 run specs x 4 parameter sets of a tiny model (T = 50, 12/10 neurons,
generator 16), 3 epochs for the overhead, ``--epochs`` for the parallel runs;
inputs are prepared before the clock starts.

Then the throughput table: ``--sweep`` runs (default 8) of the demo's size (its data:
3 Lorenz datasets, 65 conditions, T = 50; its model: generator 64, IC encoder 64,
batch 50; ``--sweep-epochs`` epochs each, default 10) trained as one sweep with the
queue's automatic choice and with the alternatives, and runs per hour of each::

    sweep of 8 demo-size runs, 10 epochs each, 2 cores:
      automatic (2 runs x 1 thread)        412 runs/hour  (70.0 s)
      1 run x 2 threads                    301 runs/hour  (95.7 s)
      8 runs x 1 thread                    398 runs/hour  (72.4 s)
      automatic choice: 100 % of the best alternative

Usage: ``python benchmarks/bench_queue.py [--epochs 20] [--runs 8] [--sweep 8]
[--sweep-epochs 10] [--only overhead|sweep]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# The in-process reference must wait for OpenMP like the queue's parallel runs do (see
# lfads_runs.executors._forkserver.openmp_env); set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _queue_helpers import load, make_config, state  # noqa: E402

from lfads_runs.executors.debug import DebugExecutor  # noqa: E402
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


def demo_sweep(root: Path, runs: int, epochs: int):
    """A collection of ``runs`` demo-size runs (parameter sets that differ only in the
    learning-rate floor, which these short runs never reach), inputs prepared."""
    import yaml

    from lfads_runs.collection import RunCollection
    from lfads_runs.data.synthetic import lorenz, write_lorenz_datasets
    from lfads_runs.demo import FULL as s

    root.mkdir(parents=True)
    data = lorenz(
        n_datasets=len(s.n_neurons), n_conditions=s.n_conditions,
        trials_per_condition=s.trials_per_condition, n_neurons=s.n_neurons,
        duration_ms=s.duration_ms, bin_ms=s.bin_ms, mean_rate_hz=s.mean_rate_hz, seed=0,
    )  # fmt: skip
    names = list(write_lorenz_datasets(data, root / "data"))
    params = [
        {**s.params, "c_max_epochs": epochs, "c_learning_rate_stop": 1e-3 * (1 - i / 1000)}
        for i in range(runs)
    ]
    doc = {
        "name": "sweep",
        "root": "./runs",
        "datasets": {"path": "./data", "items": [{"name": n, "file": f"{n}.h5"} for n in names]},
        "run_specs": [{"name": "all", "datasets": "all"}],
        "params": params,
        "train": {"device": "cpu", "seed": 0},
    }
    (root / "sweep.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    rc = RunCollection.from_yaml(root / "sweep.yaml")
    rc.prepare(rc.all_runs)
    return rc


def sweep_table(tmp: Path, runs: int, epochs: int) -> None:
    cores = os.cpu_count() or 1
    choices = {
        "automatic": {},
        f"1 run x {cores} threads": {"max_parallel": 1, "threads": cores},
        f"{runs} runs x 1 thread": {"max_parallel": runs, "threads": 1},
    }
    rates = {}
    print(f"sweep of {runs} demo-size runs, {epochs} epochs each, {cores} cores:", flush=True)
    for i, (label, opts) in enumerate(choices.items()):
        rc = demo_sweep(tmp / f"sweep{i}", runs, epochs)
        ex = LocalExecutor(gpus=[], **opts)
        t0 = time.time()
        res = rc.train(rc.all_runs, executor=ex, quiet=True)
        wall = time.time() - t0
        if res.n_done != runs:
            raise SystemExit(f"sweep runs failed: {res.summary()}")
        if not opts:
            n, per = len(ex.slots), "-".join(sorted({str(s.threads) for s in ex.slots}))
            label = f"automatic ({n} run{'s' * (n > 1)} x {per} thread{'s' * (per != '1')})"
        rates[label] = runs * 3600.0 / wall
        print(f"  {label:<36} {rates[label]:6.0f} runs/hour  ({wall:.1f} s)", flush=True)
    auto = next(v for k, v in rates.items() if k.startswith("automatic"))
    best = max(v for k, v in rates.items() if not k.startswith("automatic"))
    print(f"  automatic choice: {100.0 * auto / best:.0f} % of the best alternative", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--sweep", type=int, default=8, help="runs of the throughput table")
    ap.add_argument("--sweep-epochs", type=int, default=10)
    ap.add_argument("--only", choices=("overhead", "sweep"), default=None)
    args = ap.parse_args()
    if args.only != "sweep":
        overhead(args)
    if args.only != "overhead":
        with tempfile.TemporaryDirectory() as tmp:
            sweep_table(Path(tmp), args.sweep, args.sweep_epochs)


def overhead(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rc, chosen = collection(tmp / "debug", args.runs, 3)
        t0 = time.time()
        res = rc.train(chosen, executor=DebugExecutor(echo=False), quiet=True)
        ref = time.time() - t0
        assert res.n_done == len(chosen), res.summary()
        print(f"in-process reference (debug executor): {args.runs} runs in {ref:.1f} s", flush=True)
        for method in ("forkserver", "subprocess"):
            wall, spans, _, _ = run_queue(
                tmp / f"overhead_{method}", args.runs, 3, max_parallel=1, start_method=method
            )
            print(
                f"scheduling overhead per run ({method}): {(wall - ref) / args.runs:.2f} s "
                f"(wall {wall:.1f} s; gaps between runs median "
                f"{statistics.median(gaps(spans)):.2f} s)",
                flush=True,
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
