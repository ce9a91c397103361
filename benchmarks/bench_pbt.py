"""PBT (AutoLFADS) vs the default run vs a random grid, on a small stitched dataset.

Two synthetic Lorenz sessions (30 and 26 neurons, 500 ms at 10 ms bins) with few
trials each (``--conditions`` x ``--trials``, default 8 x 3 per session) and 20 %
of each session's neurons held out. The model is larger than the data need, with
the package's default regularisation (dropout 0.05, L2 500, KL weight 1, no
coordinated dropout), so default hyperparameters overfit. A run collection (``all``
run spec, one parameter set) is trained three ways.

Comparison rules (the same for the three methods):

- Every model trains the same number of epochs: those of a PBT member (generation 0
  runs through the KL/L2 ramps plus ``epochs_per_generation``, then
  ``generations - 1`` more generations).
- ``default``: the parameter set as written (engine seed = the benchmark seed).
- ``grid``: ``population`` models with exactly the initial hyperparameters and engine
  seeds of PBT's members, trained without exploit/explore (so the grid is PBT minus
  its evolution). The winner is the model with the best ranking value at the end
  (``smth_valid_nll_heldin`` of the validation trials' held-in neurons, averaged over
  the last 5 epochs), the rule PBT ranks its members by and picks its best with.
- ``pbt``: ``rc.tune()`` with that population (Ray Tune, local); the best member
  (``run.tuned()``).
- Every model is scored on its final checkpoint. ``default@lve`` and ``grid@lve``
  add the lowest-validation-error checkpoint of the same runs (LFADS's own early
  stopping, which PBT's ``best/`` does not have), so early stopping is not what
  decides the comparison.
- No selection uses the held-out neurons.

Scores are on the validation trials of both sessions with posterior-mean rates and
factors: ``co-bps`` (NLB bits/spike of the held-out neurons) and ``R2`` (factor ->
true Lorenz latent, a linear map fitted on the training trials), averaged over the
sessions. One row per method, mean ± sd over the seeds. The goal is that PBT beats both.

PBT explores with ``explore_width: 0.3`` (AutoLFADS's weight for the learning rate,
dropout and CD rate) and copies the top quarter into the bottom quarter. The defaults
(10 generations x 25 epochs after a 40-epoch ramp: 290 epochs per model) are long
enough for the default model to overfit (its validation co-bps peaks near epoch 175).

Usage: ``python benchmarks/bench_pbt.py [--seeds 0,1] [--population 8]
[--generations 10] [--epochs-per-generation 25] [--threads 2] [--out DIR]``;
``--tiny`` (population 2, 2 x 2 epochs after the ramp, one seed) only checks that it runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

#: architecture and ramps; the regularisation is the package's default
MODEL = (
    "spikeBinMs: 10, c_factors_dim: 20, c_co_dim: 0, c_gen_dim: 128, c_ic_enc_dim: 128, "
    "c_ic_dim: 64, c_batch_size: 4, c_kl_increase_steps: 200, c_l2_increase_steps: 200, "
    "num_samples_posterior: 8"
)
#: each initial range brackets the default value (lr 0.01, keep 0.95, L2 500, KL 1)
SEARCH = """\
    c_learning_rate_init: {min: 2.0e-3, max: 5.0e-2, init: [5.0e-3, 2.0e-2], scale: log}
    c_keep_prob: {min: 0.5, max: 1.0, init: [0.6, 1.0]}
    c_l2_gen_scale: {min: 1.0, max: 1.0e+4, init: [50.0, 5000.0], scale: log}
    c_kl_ic_weight: {min: 0.1, max: 10.0, init: [0.3, 3.0], scale: log}
    cd_rate: {min: 0.01, max: 0.7, init: [0.01, 0.5]}
"""


def write_collection(folder: Path, seed: int, args) -> Path:
    from lfads_runs.synthetic import lorenz, write_lorenz_datasets

    data = lorenz(
        n_datasets=2, n_conditions=args.conditions, trials_per_condition=args.trials,
        n_neurons=(30, 26), duration_ms=500, bin_ms=10, mean_rate_hz=15.0, seed=seed,
    )  # fmt: skip
    write_lorenz_datasets(data, folder / "data")
    text = textwrap.dedent(
        f"""\
        name: bench_pbt
        root: ./runs
        datasets:
          path: ./data
          items:
            - {{name: dataset001, file: dataset001.h5, heldout_neurons: {{fraction: 0.2, seed: 0}}}}
            - {{name: dataset002, file: dataset002.h5, heldout_neurons: {{fraction: 0.2, seed: 1}}}}
        run_specs:
          - {{name: all, datasets: all}}
        params:
          - {{{MODEL}}}
        tune:
          population: {args.population}
          epochs_per_generation: {args.epochs_per_generation}
          generations: {args.generations}
          quantile: 0.25
          explore_width: 0.3
          cpus_per_member: 1
          seed: {seed}
          search:
        """
    ) + textwrap.indent(SEARCH, "  ")
    cfg = folder / "config.yaml"
    cfg.write_text(text)
    return cfg


def score(run, save_dir: Path, checkpoint: str, data) -> dict[str, float]:
    """co-bps of the held-out neurons and factor -> latent R² on the validation trials."""
    from lfads_runs.demo import heldout_r2
    from lfads_runs.dump import spec_from_output_dir
    from lfads_runs.engine import infer, load_model
    from lfads_runs.io.lfads_input import read_lfads_input
    from lfads_runs.results.nlb_metrics import bits_per_spike

    spec = spec_from_output_dir(save_dir, input_dir=run.path_lfads_input)
    rows = []
    for ds in data.datasets:
        inp = read_lfads_input(run.path_lfads_input / f"lfads_{ds.name}.h5")
        train = inp.train_inds.astype(int) - 1
        valid = inp.valid_inds.astype(int) - 1
        heldout = np.asarray(inp.extras["heldout_neurons"], dtype=int)
        model = load_model(save_dir if checkpoint == "lve" else _latest(save_dir), spec)
        res = infer(model, spec, ds.counts, dataset=ds.name, kind="posterior_push_mean", seed=0)
        rates, factors = res["output_dist_params"], res["factors"]
        rows.append(
            {
                "co-bps": bits_per_spike(
                    rates[valid][..., heldout], ds.counts[valid][..., heldout]
                ),
                "R2": heldout_r2(factors, ds.latents, train, valid),
            }
        )
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def _latest(save_dir: Path) -> Path:
    from lfads_runs.io.checkpoint_state import read_checkpoint_state

    return read_checkpoint_state(save_dir, "checkpoint").model_checkpoint_path


def load_lorenz(folder: Path, seed: int, args):
    from lfads_runs.synthetic import lorenz

    return lorenz(
        n_datasets=2, n_conditions=args.conditions, trials_per_condition=args.trials,
        n_neurons=(30, 26), duration_ms=500, bin_ms=10, mean_rate_hz=15.0, seed=seed,
    )  # fmt: skip


EPOCHS = [0]  #: epochs per model of the last search (printed in the summary)


def one_seed(folder: Path, seed: int, args) -> dict[str, dict[str, float]]:
    from lfads_runs import RunCollection
    from lfads_runs.engine import train
    from lfads_runs.tuning.results import read_members

    cfg = write_collection(folder, seed, args)
    data = load_lorenz(folder, seed, args)
    rc = RunCollection.from_yaml(cfg)
    spec = rc.options["tune"]
    run = rc.run("all", 1)
    run.prepare()
    quiet = {"log": lambda m: None, "progress": False}
    out: dict[str, dict[str, float]] = {}

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    rc.tune(init={"num_cpus": args.threads}, echo=lambda m: print(f"# {m}", file=sys.stderr))
    members = read_members(run.paths.tune_dir)
    epochs = int(members[0].rows[-1]["epochs"])  # every member's: the budget of each model
    EPOCHS[:] = [epochs]
    out["pbt"] = score(run, run.tuned().path_lfads_output, "latest", data)
    _describe_search(members, spec)

    save = folder / "default"
    train(run.path_lfads_input, save, run.hparams(max_epochs=epochs), seed=seed, **quiet)
    out["default"] = score(run, save, "latest", data)
    out["default@lve"] = score(run, save, "lve", data)

    best = None
    hp = {r.name: r.hp_name for r in spec.search}
    for i, draw in enumerate(spec.initial_configs()):  # PBT's members before any exploit
        save = folder / f"grid_{i:02d}"
        hps = run.hparams(max_epochs=epochs, **{hp[k]: v for k, v in draw.items()})
        res = train(run.path_lfads_input, save, hps, seed=spec.seed + i, **quiet)
        v = spec.ranked_value(res.history)  # PBT's rule: the metric's last epochs, averaged
        v = float("inf") if v is None else v
        print(f"# grid_{i:02d}: {spec.metric} {v:.5f}", file=sys.stderr)
        if best is None or v < best[0]:
            best = (v, save)
    out["grid"] = score(run, best[1], "latest", data)
    out["grid@lve"] = score(run, best[1], "lve", data)
    return out


def _describe_search(members, spec) -> None:
    """Each member's last metric, exploits and final hyperparameters (stderr)."""
    for m in members:
        exploits = sum(1 for r in m.rows if r.get("exploited"))
        hps = ", ".join(f"{k}={v:.3g}" for k, v in m.rows[-1]["hparams"].items())
        print(
            f"# {m.name}: {spec.metric} {m.last_value:.5f}, {exploits} exploit(s); {hps}",
            file=sys.stderr,
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--population", type=int, default=8)
    ap.add_argument("--generations", type=int, default=10)
    ap.add_argument("--epochs-per-generation", type=int, default=25)
    ap.add_argument("--conditions", type=int, default=8)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="CPUs of the local Ray")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--tiny", action="store_true", help="population 2, 2 x 2 epochs, one seed")
    args = ap.parse_args(argv)
    if args.tiny:
        args.seeds, args.population, args.generations, args.epochs_per_generation = "0", 2, 2, 2
    import torch

    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_pbt_"))
    t0 = time.monotonic()
    results: dict[str, list[dict[str, float]]] = {}
    for seed in seeds:
        folder = out / f"seed{seed}"
        folder.mkdir(parents=True, exist_ok=True)
        rows = one_seed(folder, seed, args)
        for method, row in rows.items():
            results.setdefault(method, []).append(row)
        print(f"# seed {seed}: {json.dumps(rows)}", file=sys.stderr, flush=True)
    print(f"{'method':12} " + " ".join(f"{c:>17}" for c in ("co-bps", "R2")))
    for method, rows in results.items():
        cells = []
        for c in ("co-bps", "R2"):
            vals = [r[c] for r in rows]
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            cells.append(f"{statistics.mean(vals):8.4f} ± {sd:6.4f}")
        print(f"{method:12} " + " ".join(cells))
    cmd = " ".join(["python", "benchmarks/bench_pbt.py", *(argv or sys.argv[1:])])
    print(
        f"seeds {seeds}; population {args.population}; {args.generations} generations x "
        f"{args.epochs_per_generation} epochs after the ramps ({EPOCHS[0]} epochs per model); "
        f"{time.monotonic() - t0:.0f} s; outputs in {out}"
    )
    print(f"command: {cmd}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
