"""Speed of posterior sampling on bench_train.py's data, without and with a controller.

Prints one line per configuration and kind, e.g.::

    stitch_no_controller posterior_sample_and_average: 12.3 s for 1000 trials x 512 samples (81 trials/s)
    stitch_no_controller posterior_push_mean: 0.41 s for 1000 trials (2439 trials/s)

The model is bench_train.py's (3 datasets of 35, 26 and 35 neurons, T = 100,
generator 64, IC encoder 64; with a controller co_dim 4, ci_enc 64, con 64) with
freshly initialised weights (the cost of sampling does not depend on their values).
Trials: the validation splits (300 + 300 + 400), or the first ``--trials`` of each.

Only engine functions that have existed since before the posterior speed-up are
used (``build_spec``, ``load_datasets``, ``LfadsModel``, ``posterior_arrays``,
``NoiseSource``), so the same script times an older checkout: run it with
``PYTHONPATH`` pointing at each checkout, on the same quiet machine.

Usage: ``python benchmarks/bench_posterior.py [--threads N] [--samples 512] [--trials N]
[--configs no_controller,controller] [--kinds posterior_sample_and_average,posterior_push_mean]
[--repeats 1]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_train import hyperparameters, print_machine, write_inputs  # noqa: E402


def time_kind(data_dir: Path, hps, kind: str, samples: int, trials: int | None, repeats: int):
    import torch

    from lfads_runs.engine._rng import NoiseSource
    from lfads_runs.engine.data import build_spec, load_datasets
    from lfads_runs.engine.model import LfadsModel
    from lfads_runs.engine.posterior import posterior_arrays

    datasets = load_datasets(data_dir, hps, stem="lfads", for_training=False)
    spec = build_spec(hps, datasets)
    model = LfadsModel(spec)
    model.initialize(torch.Generator().manual_seed(0))
    batch = samples if kind == "posterior_sample_and_average" else hps.batch_size
    times, n = [], 0
    for rep in range(repeats):
        gen = NoiseSource(rep)
        t0 = time.perf_counter()
        n = 0
        for name, ds in datasets.items():
            data = ds.data("valid")
            if trials is not None:
                data = data[:trials]
            posterior_arrays(model, data, name, kind, batch_size=batch, step=0, generator=gen)
            n += data.shape[0]
        times.append(time.perf_counter() - t0)
    return statistics.median(times), n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--samples", type=int, default=512, help="samples per trial")
    ap.add_argument("--trials", type=int, default=None, help="trials of each dataset")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--configs", default="no_controller,controller")
    ap.add_argument("--kinds", default="posterior_sample_and_average,posterior_push_mean")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    print_machine(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "lfadsInput"
        write_inputs(data_dir)
        for config in args.configs.split(","):
            hps = hyperparameters(config == "controller")
            for kind in args.kinds.split(","):
                sec, n = time_kind(data_dir, hps, kind, args.samples, args.trials, args.repeats)
                what = f"{n} trials x {args.samples} samples" if "sample" in kind else f"{n} trials"
                print(
                    f"stitch_{config} {kind}: {sec:.2f} s for {what} ({n / sec:.0f} trials/s)",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
