"""PBT (AutoLFADS) vs the default run vs a random grid, on a small stitched dataset.

Two synthetic Lorenz sessions (30 and 26 neurons, 500 ms at 10 ms bins) with few
trials each (``--conditions`` x ``--trials``, default 8 x 3 per session, split into
training and validation trials by the run) and 20 % of each session's neurons held
out. The model is larger than the data need, with the package's default
regularisation (dropout 0.05, L2 500, KL weight 1, no coordinated dropout), so
default hyperparameters overfit. A run collection (``all`` run spec, one parameter
set) is trained three ways.

Comparison rules (the same for the three methods):

- Every model trains the same number of epochs: those of a PBT member (generation 0
  runs through the KL/L2 ramps plus ``epochs_per_generation``, then
  ``generations - 1`` more generations).
- One selection rule: ``valid_cobps`` (co-bps of the validation trials' held-out
  neurons, as the engine reports it each epoch) averaged over the last
  ``epochs_per_generation`` epochs (a whole generation). The held-in validation cost
  cannot see a model that fits the held-in neurons at the expense of the held-out
  ones (it ranked such a member best in an earlier version of this benchmark); NLB
  selects models on the held-out neurons of its validation split. The per-epoch value
  comes from one posterior sample of few validation trials: its epoch-to-epoch sd
  was 0.06-0.18 bits/spike on the grid's models (seed 1), so a mean of 5 epochs still
  varied by about as much as the gaps between PBT's better members; the whole
  generation is averaged instead.
- ``default``: the parameter set as written (engine seed = the benchmark seed).
- ``grid``: ``population`` models with exactly the initial hyperparameters and engine
  seeds of PBT's members, trained without exploit/explore (so the grid is PBT minus
  its evolution). The winner is the model with the best selection value at the end.
- ``pbt``: ``rc.tune()`` with that population (Ray Tune, local), ranking its members
  by the selection rule every generation; the best member (``run.tuned()``).
- Every model is scored on its final checkpoint. ``default@lve`` and ``grid@lve``
  add the lowest-validation-error checkpoint of the same runs (LFADS's own early
  stopping, which PBT's ``best/`` does not have), so early stopping is not what
  decides the comparison.
- Scores are on test trials that no method trains on or selects with:
  ``--test-trials`` further repeats of every condition per session (default 5),
  drawn with the data but not written to the input files. The posterior means of a
  test trial come from the trained model (``engine.infer``) like those of any trial.

Scores, averaged over the two sessions: ``co-bps`` (NLB bits/spike of the test
trials' held-out neurons, posterior-mean rates) and ``R2`` (posterior-mean factors ->
true Lorenz latent, a linear map fitted on the training trials and evaluated on the
test trials). One row per method and seed, then mean ± sd over the seeds. The goal is
that PBT beats both.

PBT explores with ``explore_width: 0.3`` (AutoLFADS's weight for the learning rate,
dropout and CD rate) and copies the top quarter into the bottom quarter. Its first
exploit follows generation ``--burn-in`` (default 4, epoch 165 of 290), so that
regularised members can take the lead before any exploit; ``--burn-in 0`` measured the
same (docs/tuning.md). With the default 10 generations x 25 epochs after a 40-epoch ramp
(290 epochs per model) the default model overfits (its validation co-bps, averaged over
25 epochs, peaks near epoch 170). A member that is never copied trains exactly as its
grid model does (the learning rate's decay carries across generations). The grid and the
default run train ``--threads`` models at a time, as PBT's local Ray does.

Usage: ``python benchmarks/bench_pbt.py [--seeds 0,1] [--population 16] [--burn-in 4]
[--generations 10] [--epochs-per-generation 25] [--test-trials 5] [--threads 2]
[--out DIR]``; ``--tiny`` (population 2, 2 x 2 epochs after the ramp, one seed) only
checks that it runs.
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
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
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
#: the selection rule of all three methods (see the docstring); the window is a generation
METRIC = "valid_cobps"


def make_data(seed: int, args):
    """(the sessions written to the input files, their unseen test trials)."""
    import attrs

    from lfads_runs.synthetic import lorenz

    per = args.trials + args.test_trials
    data = lorenz(
        n_datasets=2, n_conditions=args.conditions, trials_per_condition=per,
        n_neurons=(30, 26), duration_ms=500, bin_ms=10, mean_rate_hz=15.0, seed=seed,
    )  # fmt: skip
    repeat = np.arange(args.conditions * per) % per  # trials are condition-major

    def part(keep: np.ndarray):
        return attrs.evolve(
            data,
            datasets=tuple(
                attrs.evolve(
                    ds,
                    counts=ds.counts[keep],
                    condition_id=ds.condition_id[keep],
                    true_rates=ds.true_rates[keep],
                    latents=ds.latents[keep],
                )
                for ds in data.datasets
            ),
        )

    return part(repeat < args.trials), part(repeat >= args.trials)


def write_collection(folder: Path, seed: int, args, data) -> Path:
    from lfads_runs.synthetic import write_lorenz_datasets

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
          metric: {METRIC}
          metric_window: {args.epochs_per_generation}
          quantile: 0.25
          burn_in_generations: {args.burn_in}
          explore_width: 0.3
          cpus_per_member: 1
          seed: {seed}
          search:
        """
    ) + textwrap.indent(SEARCH, "  ")
    cfg = folder / "config.yaml"
    cfg.write_text(text)
    return cfg


def score(run, save_dir: Path, checkpoint: str, data, test) -> dict[str, float]:
    """co-bps of the held-out neurons and factor -> latent R² on the test trials."""
    from lfads_runs.demo import heldout_r2
    from lfads_runs.dump import spec_from_output_dir
    from lfads_runs.engine import infer, load_model
    from lfads_runs.io.lfads_input import read_lfads_input
    from lfads_runs.results.nlb_metrics import bits_per_spike

    spec = spec_from_output_dir(save_dir, input_dir=run.path_lfads_input)
    model = load_model(save_dir if checkpoint == "lve" else _latest(save_dir), spec)
    rows = []
    for ds, ts in zip(data.datasets, test.datasets, strict=True):
        inp = read_lfads_input(run.path_lfads_input / f"lfads_{ds.name}.h5")
        train = inp.train_inds.astype(int) - 1  # indices into ds's trials
        heldout = np.asarray(inp.extras["heldout_neurons"], dtype=int)
        counts = np.concatenate([ds.counts, ts.counts])  # test trials after the input's
        res = infer(model, spec, counts, dataset=ds.name, kind="posterior_push_mean", seed=0)
        test_idx = np.arange(len(ds.counts), len(counts))
        rates = res["output_dist_params"][test_idx]
        rows.append(
            {
                "co-bps": bits_per_spike(rates[..., heldout], ts.counts[..., heldout]),
                "R2": heldout_r2(
                    res["factors"], np.concatenate([ds.latents, ts.latents]), train, test_idx
                ),
            }
        )
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def _latest(save_dir: Path) -> Path:
    from lfads_runs.io.checkpoint_state import read_checkpoint_state

    return read_checkpoint_state(save_dir, "checkpoint").model_checkpoint_path


def _train_one(input_dir: Path, save: Path, hps, seed: int) -> list[dict[str, float]]:
    """One grid or default model in a worker process; its per-epoch metrics."""
    import torch

    from lfads_runs.engine import train

    torch.set_num_threads(1)  # one core per model, as a PBT member has
    res = train(input_dir, save, hps, seed=seed, log=lambda m: None, progress=False)
    return list(res.history or [])


EPOCHS = [0]  #: epochs per model of the last search (printed in the summary)


def one_seed(folder: Path, seed: int, args) -> dict[str, dict[str, float]]:
    from lfads_runs import RunCollection
    from lfads_runs.tuning.results import read_members

    data, test = make_data(seed, args)
    cfg = write_collection(folder, seed, args, data)
    rc = RunCollection.from_yaml(cfg)
    spec = rc.options["tune"]
    run = rc.run("all", 1)
    run.prepare()
    out: dict[str, dict[str, float]] = {}

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    rc.tune(init={"num_cpus": args.threads}, echo=lambda m: print(f"# {m}", file=sys.stderr))
    members = read_members(run.paths.tune_dir)
    epochs = int(members[0].rows[-1]["epochs"])  # every member's: the budget of each model
    EPOCHS[:] = [epochs]
    out["pbt"] = score(run, run.tuned().path_lfads_output, "latest", data, test)
    _describe_search(members, spec)

    # the default run and the grid (PBT's initial members), ``--threads`` at a time
    hp = {r.name: r.hp_name for r in spec.search}
    jobs = {"default": (run.hparams(max_epochs=epochs), seed)}
    for i, draw in enumerate(spec.initial_configs()):
        hps = run.hparams(max_epochs=epochs, **{hp[k]: v for k, v in draw.items()})
        jobs[f"grid_{i:02d}"] = (hps, spec.seed + i)  # PBT member i's engine seed
    with ProcessPoolExecutor(args.threads, mp_context=get_context("spawn")) as pool:
        futures = {
            name: pool.submit(_train_one, run.path_lfads_input, folder / name, hps, s)
            for name, (hps, s) in jobs.items()
        }
        histories = {name: f.result() for name, f in futures.items()}

    out["default"] = score(run, folder / "default", "latest", data, test)
    out["default@lve"] = score(run, folder / "default", "lve", data, test)
    sign = -1.0 if spec.mode == "max" else 1.0  # rank by sign * value, lowest best
    best = None
    for name in jobs:
        if not name.startswith("grid_"):
            continue
        v = spec.ranked_value(histories[name])  # PBT's rule: the metric's last epochs
        key = sign * v if v is not None and np.isfinite(v) else float("inf")  # diverged: last
        print(f"# {name}: {spec.metric} {v}", file=sys.stderr)
        if best is None or key < best[0]:
            best = (key, name)
    print(f"# grid winner: {best[1]}", file=sys.stderr)
    out["grid"] = score(run, folder / best[1], "latest", data, test)
    out["grid@lve"] = score(run, folder / best[1], "lve", data, test)
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
    ap.add_argument("--population", type=int, default=16)
    ap.add_argument("--generations", type=int, default=10)
    ap.add_argument("--epochs-per-generation", type=int, default=25)
    ap.add_argument("--burn-in", type=int, default=4, help="generations before the first exploit")
    ap.add_argument("--conditions", type=int, default=8)
    ap.add_argument("--trials", type=int, default=3, help="trials per condition in the input")
    ap.add_argument("--test-trials", type=int, default=5, help="unseen test trials per condition")
    ap.add_argument("--threads", type=int, default=2, help="CPUs of the local Ray (and the grid)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--tiny", action="store_true", help="population 2, 2 x 2 epochs, one seed")
    args = ap.parse_args(argv)
    if args.tiny:
        args.seeds, args.population, args.generations, args.epochs_per_generation = "0", 2, 2, 2
        args.burn_in = 0
    if args.test_trials < 1:
        ap.error("--test-trials must be at least 1")
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
    cols = ("co-bps", "R2")
    print(f"test trials: {'method':12} " + " ".join(f"{c:>17}" for c in cols))
    for method, rows in results.items():
        for seed, row in zip(seeds, rows, strict=True):
            print(f"seed {seed:<6} {method:12} " + " ".join(f"{row[c]:17.4f}" for c in cols))
    for method, rows in results.items():
        cells = []
        for c in cols:
            vals = [r[c] for r in rows]
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            cells.append(f"{statistics.mean(vals):8.4f} ± {sd:6.4f}")
        print(f"{'mean ± sd':11} {method:12} " + " ".join(cells))
    cmd = " ".join(["python", "benchmarks/bench_pbt.py", *(argv or sys.argv[1:])])
    print(
        f"seeds {seeds}; population {args.population}; {args.generations} generations x "
        f"{args.epochs_per_generation} epochs after the ramps ({EPOCHS[0]} epochs per model); "
        f"first exploit after generation {args.burn_in}; "
        f"selection {METRIC} (last {args.epochs_per_generation} epochs); "
        f"{args.test_trials} test trials "
        f"per condition; {time.monotonic() - t0:.0f} s; outputs in {out}"
    )
    print(f"command: {cmd}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
