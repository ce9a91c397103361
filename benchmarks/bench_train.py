"""Training speed of the LFADS engine on the Lorenz stitching configuration.

Prints one line per configuration and device, the no-controller configuration first::

    stitch_no_controller cpu: 48.3 steps/s (20.7 ms/step)
    stitch_no_controller cpu epoch: 0.54 s (24 train + 7 valid batches)

Configuration (issue 4): 3 datasets of 35, 26 and 35 neurons, T = 100 bins,
factors 8, generator 64, IC encoder 64, ic_dim 64, batch 150, no controller;
then the same with a controller (co_dim 4, ci_enc 64, con 64). A step is one
training update (forward, backward, clipping, Adam) on a real batch; the
median over repeats is reported. An epoch (24 training and 7 validation
batches, fit-log line, checkpoint bookkeeping) is timed through ``train()``.

Reference (issue 4): TensorFlow 2.15 LFADS on a 2-core machine, 20.9 steps/s (48 ms/step)
and 2.05 s per epoch without controller, 8.8 steps/s (114 ms/step) and 4.20 s with one.

``--contention`` measures steps/s with 1 thread and with all threads, first on
its own and then beside busy processes (``--busy``, default 1: one process
spinning on one core, as another user's job would), and prints (2-core machine)::

    stitch_no_controller cpu, 1 thread, quiet: 20.3 steps/s (49.2 ms/step)
    stitch_no_controller cpu, 2 threads, quiet: 34.9 steps/s (28.6 ms/step)
    stitch_no_controller cpu, 1 thread, 1 busy process: 20.5 steps/s (48.8 ms/step)
    stitch_no_controller cpu, 2 threads (ran on 1), 1 busy process: 19.8 steps/s (50.5 ms/step)

"(ran on K)": the engine's thread governor (lfads_runs/engine/threads.py) ended on K
threads because the busy processes kept cores busy. With N threads never slower
than 1 beside a busy process, using every core by default is safe.
``LFADS_RUNS_ADAPT_THREADS=0`` times a fixed thread count instead.

Usage: ``python benchmarks/bench_train.py [--threads N] [--steps N] [--repeats N]
[--epochs N] [--devices cpu,cuda] [--configs no_controller,controller]
[--contention [--busy N]]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# OpenMP's wait policy is the environment's, as for one ``lfads-runs train`` run alone on its
# cores (``OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_train.py`` times the queue's choice
# for parallel runs).


def write_inputs(folder: Path) -> None:
    """Lorenz stitching data: 1200 train trials per dataset, 300/300/400 valid (24 + 7 batches)."""
    from lfads_runs.data.synthetic import lorenz
    from lfads_runs.io.lfads_input import LfadsInput, write_lfads_input

    folder.mkdir(parents=True, exist_ok=True)
    n_valid = (300, 300, 400)
    per_cond = [int(np.ceil((1200 + v) / 65)) for v in n_valid]
    data = lorenz(
        n_datasets=3,
        n_conditions=65,
        trials_per_condition=per_cond,
        n_neurons=(35, 26, 35),
        duration_ms=1000,
        bin_ms=10,
        seed=0,
        mean_rate_hz=5.0,
    )
    rng = np.random.default_rng(1)
    for ds, nv in zip(data.datasets, n_valid, strict=True):
        order = rng.permutation(ds.counts.shape[0])
        va, tr = order[:nv], order[nv : nv + 1200]
        write_lfads_input(
            folder / f"lfads_{ds.name}.h5",
            LfadsInput(train_data=ds.counts[tr], valid_data=ds.counts[va]),
        )


def print_machine(threads: int) -> None:
    """The first line of a benchmark's output (stderr): torch, threads, CPUs and kernels."""
    import torch

    from lfads_runs.engine._ext import native

    ops = native()
    kernels = f"native kernels ({ops.simd()})" if ops is not None else "no native kernels"
    print(
        f"# torch {torch.__version__}, {threads} threads, {os.cpu_count()} CPUs, {kernels}",
        file=sys.stderr,
    )


def hyperparameters(controller: bool):
    from lfads_runs.hparams import Hyperparameters

    kw = dict(
        batch_size=150,
        factors_dim=8,
        gen_dim=64,
        ic_enc_dim=64,
        ic_dim=64,
        co_dim=0,
        learning_rate_decay_factor=0.98,
        l2_gen_scale=500.0,
        l2_con_scale=500.0,
        kl_increase_steps=2700,
        l2_increase_steps=2700,
        keep_prob=0.95,
    )
    if controller:
        kw.update(co_dim=4, ci_enc_dim=64, con_dim=64)
    return Hyperparameters(**kw)


def time_steps(
    data_dir: Path, hps, device: str, steps: int, repeats: int, used: list[int] | None = None
) -> list[float]:
    """Seconds per training step (the trainer's own step), one median per repeat;
    ``used`` receives the thread count the trainer ended on (its governor may have
    lowered it beside busy processes)."""
    import torch

    from lfads_runs.engine.data import epoch_batches
    from lfads_runs.engine.model import PassConfig
    from lfads_runs.engine.training import _Trainer

    with tempfile.TemporaryDirectory() as out:
        tr = _Trainer(
            data_dir,
            out,
            hps,
            device=device,
            seed=0,
            progress=False,
            log=lambda m: None,
            flags={},
            stem="lfads",
            load_name="checkpoint",
        )
        tr.restore()
        cfg = PassConfig.for_kind("train", hps.keep_prob)
        batches = epoch_batches(tr._sizes("train"), hps.batch_size, np.random.default_rng(0))

        def one(i: int) -> None:
            name, idx = batches[i % len(batches)]
            tr.train_step(name, idx, cfg)
            if tr.device.type == "cuda":
                torch.cuda.synchronize()

        for i in range(3):
            one(i)
        out_times = []
        for _ in range(repeats):
            ts = []
            for i in range(steps):
                t0 = time.perf_counter()
                one(i)
                ts.append(time.perf_counter() - t0)
            out_times.append(statistics.median(ts))
        if used is not None:
            used.append(tr.governor.threads)
    return out_times


def time_epochs(data_dir: Path, hps, device: str, epochs: int) -> list[float]:
    """Wall time of each epoch after the first (which includes start-up), via train()."""
    from lfads_runs.engine import train

    stamps: list[float] = []
    with tempfile.TemporaryDirectory() as out:
        train(
            data_dir,
            out,
            hps.evolve(max_epochs=epochs + 1),
            device=device,
            seed=0,
            progress=False,
            log=lambda msg: (
                stamps.append(time.perf_counter()) if msg.startswith("Epoch:") else None
            ),
        )
    return [b - a for a, b in zip(stamps[:-1], stamps[1:], strict=True)]


def busy_processes(n: int) -> list[subprocess.Popen]:
    """``n`` processes that each keep one core busy until killed."""
    code = "while True:\n    pass"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(n)]


def contention(data_dir: Path, config: str, dev: str, args) -> None:
    """Steps/s with 1 and all threads, quiet and beside ``args.busy`` busy processes."""
    import torch

    hps = hyperparameters(config == "controller")
    for busy in (0, args.busy):
        procs = busy_processes(busy)
        try:
            time.sleep(0.5 * (busy > 0))  # let them get going
            for threads in sorted({1, args.threads}):
                torch.set_num_threads(threads)
                used: list[int] = []
                per_step = statistics.median(
                    time_steps(data_dir, hps, dev, args.steps, args.repeats, used)
                )
                where = f"{busy} busy process{'es' * (busy > 1)}" if busy else "quiet"
                ran = f" (ran on {used[-1]})" if used and used[-1] != threads else ""
                print(
                    f"stitch_{config} {dev}, {threads} thread{'s' * (threads > 1)}{ran}, {where}: "
                    f"{1.0 / per_step:.1f} steps/s ({per_step * 1e3:.1f} ms/step)",
                    flush=True,
                )
        finally:
            for p in procs:
                p.kill()
                p.wait()
    torch.set_num_threads(args.threads)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--steps", type=int, default=20, help="timed steps per repeat")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs (after a first one)")
    ap.add_argument("--devices", default=None, help="comma list; default cpu (+cuda if present)")
    ap.add_argument("--configs", default="no_controller,controller")
    ap.add_argument(
        "--contention", action="store_true", help="1 vs all threads, quiet and beside busy ones"
    )
    ap.add_argument("--busy", type=int, default=1, help="busy processes for --contention")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    devices = (
        args.devices.split(",")
        if args.devices
        else (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    )
    print_machine(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "lfadsInput"
        write_inputs(data_dir)
        for config in args.configs.split(","):
            hps = hyperparameters(config == "controller")
            for dev in devices:
                if args.contention:
                    contention(data_dir, config, dev, args)
                    continue
                per_step = statistics.median(
                    time_steps(data_dir, hps, dev, args.steps, args.repeats)
                )
                print(
                    f"stitch_{config} {dev}: {1.0 / per_step:.1f} steps/s "
                    f"({per_step * 1e3:.1f} ms/step)",
                    flush=True,
                )
                if args.epochs > 0:
                    ep = statistics.median(time_epochs(data_dir, hps, dev, args.epochs))
                    print(
                        f"stitch_{config} {dev} epoch: {ep:.2f} s (24 train + 7 valid batches)",
                        flush=True,
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
