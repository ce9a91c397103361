"""Single-session LFADS on synthetic Lorenz data, step by step.

The Python counterpart of the MATLAB tool's ``LorenzExperiment/drive_script.m``
(and of docs/single-session.md and docs/analysis.md there), in the same order:
generate the datasets, describe them, build the run collection, set the
parameters, add the run spec, prepare the LFADS inputs, train, load the results
and plot. The same collection as a YAML file: ``configs/lorenz_single.yaml``.

Run it from anywhere (needs the torch and plot extras)::

    python examples/drive_script.py                 # runs in ./lorenz_example
    python examples/drive_script.py --root /tmp/lz --quick

``--quick`` trains a small model for a few epochs (about a minute on a laptop CPU);
the default trains the drive script's model (factors 8, generator 64; batch 50)
for 70 epochs, a few minutes on a CPU.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lfads_runs import Dataset, DatasetCollection, RunCollection, RunParams, RunSpec
from lfads_runs.actions.figures import (
    save_factor_figures,
    save_fitlog_figure,
    save_param_figures,
    save_rate_figures,
)
from lfads_runs.data.synthetic import lorenz, write_lorenz_datasets


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path("lorenz_example"), help="working folder")
    ap.add_argument("--threads", type=int, default=None, help="torch threads per run")
    ap.add_argument("--quick", action="store_true", help="small model, few epochs")
    args = ap.parse_args(argv)
    root = args.root.resolve()

    # %% Generate synthetic Lorenz datasets (MATLAB: LFADS.Utils.generateDemoDatasets).
    # Three sessions share the Lorenz conditions; this script uses the first one.
    # MATLAB made 1 ms bins and rebinned to 2 ms (T = 500); 20 ms bins (T = 50) train
    # in minutes on a CPU (the choices of `lfads-runs demo`, see configs/lorenz_single.yaml).
    dataset_path = root / "datasets"
    data = lorenz(
        n_datasets=3,
        n_conditions=20 if args.quick else 65,
        trials_per_condition=(10, 10, 10) if args.quick else (28, 29, 21),
        n_neurons=(35, 26, 35),
        duration_ms=1000,
        bin_ms=20,
        mean_rate_hz=10.0,
        seed=0,
    )
    files = write_lorenz_datasets(data, dataset_path)

    # %% Locate and specify the datasets (MATLAB: LorenzExperiment.DatasetCollection,
    # LorenzExperiment.Dataset(dc, 'dataset001.mat'), ...).
    dc = DatasetCollection(dataset_path, [Dataset.from_file(f) for f in files.values()])
    print("datasets:", ", ".join(dc.names))

    # %% Build the run collection (MATLAB: LorenzExperiment.RunCollection(runRoot,
    # 'exampleSingleSession', dc); rc.version = 20180131).
    rc = RunCollection(root / "runs", "exampleSingleSession", dc, [], [], version=20180131)

    # %% Set parameters (MATLAB: par = LorenzExperiment.RunParams; par.c_co_dim = 0; ...).
    par = RunParams(
        spike_bin_ms=20,
        c_co_dim=0,  # no controller, no inferred inputs
        c_batch_size=20 if args.quick else 50,
        c_factors_dim=8,
        c_gen_dim=32 if args.quick else 64,
        c_ic_enc_dim=32 if args.quick else 64,
        c_ic_dim=32 if args.quick else 64,
        c_learning_rate_stop=1e-3,
        c_kl_increase_steps=100,
        c_l2_increase_steps=100,
        max_epochs=15 if args.quick else 70,  # lfads_runs extension
        posterior_mean_kind="posterior_push_mean",
    )
    rc.add_params(par)

    # %% Specify the run spec: a single-session run on dataset001 (MATLAB:
    # runSpecName = dc.datasets(1).getSingleRunName(); LorenzExperiment.RunSpec(...)).
    ds = dc[0]
    rc.add_run_spec(RunSpec(ds.single_run_name, [ds.name]))
    print(rc)

    # %% Prepare the LFADS input files (MATLAB: rc.prepareForLFADS()).
    rc.prepare()

    # %% Train (MATLAB: rc.writeShellScriptRunQueue(...) and run_lfads_queue on the GPUs).
    # Here the runs train in subprocesses of this machine; `lfads-runs train` does the same.
    result = rc.train(seed=0, threads=args.threads)
    print(result.summary())
    if not result.ok:
        return 1

    # %% Load the results (MATLAB: run.loadPosteriorMeans(), run.loadModelTrainedParams()).
    run = rc.find_runs(ds.single_run_name, 1)
    pm = run.load_posterior_means()[ds.name]
    print(pm)
    print("rates: counts per", pm.bin_width_ms, "ms bin; in spikes/s:", pm.rates_hz.shape)
    conditions, avg = pm.condition_averaged("factors")
    print("condition-averaged factors:", avg.shape, "for", len(conditions), "conditions")
    print(run.load_model_trained_params())

    # %% Plot (MATLAB docs: factor1_pm.png, example_rates.png, generator_W.png, ...).
    figures = root / "figures"
    paths = (
        save_factor_figures(run, figures)
        + save_rate_figures(run, figures)
        + save_fitlog_figure(run, figures)
        + save_param_figures(run, figures)
    )
    for p in paths:
        print("wrote", p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
