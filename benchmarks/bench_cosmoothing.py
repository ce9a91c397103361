"""Co-smoothing on synthetic Lorenz data: default LFADS vs coordinated dropout, full vs small data.

One Lorenz dataset (30 neurons, 500 ms at 10 ms bins) with 6 neurons held out
(``heldout_fraction`` 0.2, seed 0): the encoders read 24 neurons, the read-out
predicts all 30. Two data sizes: ``full`` (40 conditions x 5 trials) and
``small`` (12 conditions x 4 trials, where a sequential autoencoder overfits).
Per size, variant and seed the engine trains a fixed number of epochs (600
Adam steps at both sizes by default: 60 epochs x 10 batches, 120 x 5); the
lowest-validation-error checkpoint is then scored on the validation trials
with posterior-mean rates and factors:

- ``co-bps``: NLB bits/spike of the held-out neurons' rates (lfads_runs.results.nlb_metrics);
- ``R2``: held-out factor -> true Lorenz latent R² (linear map fitted on training trials);
- ``psth R2``: NLB's PSTH R² of the condition-averaged rates against the true rates.

Variants: ``default`` (TF LFADS) and ``cd`` (``cd_rate`` 0.3); ``--sv-rate`` adds
``cd+sv`` (model selection on the sample-validation cost). Prints one row per
size and variant (mean ± sd over seeds) and the command that reproduces it.

Usage: ``python benchmarks/bench_cosmoothing.py [--seeds 0,1,2] [--epochs-full 60]
[--epochs-small 120] [--sizes full,small] [--sv-rate 0.2] [--threads 2] [--out DIR]``
(the defaults should take about 10 minutes on 2 quiet CPU cores: an estimate from a
busy machine); ``--tiny`` checks that it runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIZES = {"full": (40, 5, 16), "small": (12, 4, 8)}  # conditions, trials each, batch size
N_NEURONS, HELDOUT_FRACTION, DURATION_MS, BIN_MS = 30, 0.2, 500, 10
MODEL = dict(
    factors_dim=8, gen_dim=48, ic_enc_dim=32, ic_dim=32, co_dim=0, l2_gen_scale=50.0,
    kl_increase_steps=200, l2_increase_steps=200, learning_rate_stop=1e-4,
    learning_rate_decay_factor=0.95,
)  # fmt: skip


def make_input(folder: Path, size: str, seed: int):
    """Write ``lfads_lorenz.h5`` with the held-out split; returns the Lorenz dataset and split."""
    from lfads_runs.data.binning import split_trials
    from lfads_runs.data.cosmoothing import choose_heldout, split_extras
    from lfads_runs.io.lfads_input import LfadsInput, write_lfads_input
    from lfads_runs.synthetic import lorenz

    n_cond, n_trials, _ = SIZES[size]
    ds = lorenz(
        n_datasets=1, n_conditions=n_cond, trials_per_condition=n_trials, n_neurons=(N_NEURONS,),
        duration_ms=DURATION_MS, bin_ms=BIN_MS, mean_rate_hz=15.0, seed=seed,
    ).datasets[0]  # fmt: skip
    heldout = choose_heldout(N_NEURONS, fraction=HELDOUT_FRACTION, seed=0)
    train, valid = split_trials(ds.counts.shape[0], 4)
    extras = split_extras(N_NEURONS, ds.counts.shape[1], heldout=heldout)
    write_lfads_input(
        folder / "lfads_lorenz.h5",
        LfadsInput(
            train_data=ds.counts[train - 1],
            valid_data=ds.counts[valid - 1],
            train_inds=train.astype(float),
            valid_inds=valid.astype(float),
            extras=extras,
        ),
    )
    return ds, heldout, train - 1, valid - 1


def score(save_dir: Path, data_dir: Path, ds, heldout, train, valid) -> dict[str, float]:
    from lfads_runs.demo import heldout_r2
    from lfads_runs.dump import spec_from_output_dir
    from lfads_runs.engine import infer, load_model
    from lfads_runs.results.nlb_metrics import bits_per_spike, psth_r2

    spec = spec_from_output_dir(save_dir, input_dir=data_dir)
    model = load_model(save_dir, spec)  # the lowest-validation-error checkpoint
    res = infer(model, spec, ds.counts, dataset="lorenz", kind="posterior_push_mean", seed=0)
    rates, factors = res["output_dist_params"], res["factors"]
    cond = ds.condition_id[valid]
    conds = np.unique(cond)
    psth = np.stack([ds.true_rates[valid][cond == c].mean(0) for c in conds])
    return {
        "co-bps": bits_per_spike(rates[valid][..., heldout], ds.counts[valid][..., heldout]),
        "R2": heldout_r2(factors, ds.latents, train, valid),
        "psth R2": psth_r2(psth, rates[valid], [np.flatnonzero(cond == c) for c in conds]),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--sizes", default="full,small")
    ap.add_argument("--epochs-full", type=int, default=60)
    ap.add_argument("--epochs-small", type=int, default=120)
    ap.add_argument("--cd-rate", type=float, default=0.3)
    ap.add_argument("--sv-rate", type=float, default=0.0, help="> 0 adds a cd+sv variant")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--tiny", action="store_true", help="2 epochs, one seed: checks it runs")
    args = ap.parse_args(argv)
    import torch

    from lfads_runs.engine import train
    from lfads_runs.hparams import Hyperparameters

    torch.set_num_threads(args.threads)
    seeds = [0] if args.tiny else [int(s) for s in args.seeds.split(",")]
    epochs = {"full": args.epochs_full, "small": args.epochs_small}
    if args.tiny:
        epochs = {"full": 2, "small": 2}
    variants = {"default": {}, "cd": {"cd_rate": args.cd_rate}}
    if args.sv_rate > 0:
        variants["cd+sv"] = {"cd_rate": args.cd_rate, "sv_rate": args.sv_rate}
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_cosmoothing_"))
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    t0 = time.monotonic()
    for size in args.sizes.split(","):
        for seed in seeds:
            data_dir = out / f"{size}_s{seed}" / "lfadsInput"
            data_dir.mkdir(parents=True, exist_ok=True)
            ds, heldout, tr, va = make_input(data_dir, size, seed)
            for variant, extra in variants.items():
                hps = Hyperparameters(
                    **MODEL, batch_size=SIZES[size][2], max_epochs=epochs[size], **extra
                )
                save = data_dir.parent / variant
                train(data_dir, save, hps, seed=seed, log=lambda m: None, progress=False)
                row = score(save, data_dir, ds, heldout, tr, va)
                results.setdefault((size, variant), []).append(row)
                print(
                    f"# {size} {variant} seed {seed}: "
                    + ", ".join(f"{k} {v:.4f}" for k, v in row.items()),
                    file=sys.stderr,
                    flush=True,
                )
    cols = ("co-bps", "R2", "psth R2")
    print(f"{'data':6} {'variant':8} " + " ".join(f"{c:>17}" for c in cols))
    for (size, variant), rows in results.items():
        cells = []
        for c in cols:
            vals = [r[c] for r in rows]
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            cells.append(f"{statistics.mean(vals):8.4f} ± {sd:6.4f}")
        print(f"{size:6} {variant:8} " + " ".join(cells))
    cmd = " ".join(["python", "benchmarks/bench_cosmoothing.py", *(argv or sys.argv[1:])])
    print(f"seeds {seeds}; epochs {epochs}; {time.monotonic() - t0:.0f} s; outputs in {out}")
    print(f"command: {cmd}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
