"""Stitching three sessions with LFADS on synthetic Lorenz data, step by step.

The Python counterpart of the MATLAB tool's ``LorenzExperiment/drive_script_stitching.m``
(and of docs/multisession.md and docs/analysis.md there), in the same order:
generate the datasets, describe them, build the run collection, set the
parameters (with alignment matrices), add one single-session run spec per
dataset and the stitched run spec ``all``, prepare, look at the alignment
reconstruction, train, load the results and plot. The same collection as a
YAML file: ``configs/lorenz_stitching.yaml``; ``lfads-runs demo`` runs the
stitched part of this script end to end and scores it.

Run it from anywhere (needs the torch and plot extras)::

    python examples/drive_script_stitching.py                   # stitched run only
    python examples/drive_script_stitching.py --with-single     # also the 3 single runs
    python examples/drive_script_stitching.py --quick --root /tmp/st

``--with-single`` also trains the three single-session runs and draws factor 1
of each: the single-session models find unrelated factors, the stitched model
finds the same factors in every session (docs/analysis.md's comparison figures).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from lfads_runs import Dataset, DatasetCollection, RunCollection, RunParams, RunSpec
from lfads_runs.actions.figures import (
    save_alignment_figure,
    save_factor_figures,
    save_fitlog_figure,
    save_param_figures,
    save_pca_figure,
    save_rate_figures,
)
from lfads_runs.data.synthetic import lorenz, write_lorenz_datasets


def compare_factor1(runs, out: Path) -> Path:
    """Condition-averaged factor 1 of each session, one panel per run (MATLAB docs figure)."""
    from matplotlib.figure import Figure

    from lfads_runs.plots.results import save_figure

    fig = Figure(figsize=(4.0 * len(runs), 3.4))
    axes = fig.subplots(1, len(runs), squeeze=False)[0]
    for ax, (title, run) in zip(axes, runs.items(), strict=True):
        for ds, pm in run.load_posterior_means().items():
            _, avg = pm.condition_averaged("factors")
            ax.plot(pm.time_ms, avg[:10, :, 0].T, lw=1, color=f"C{int(ds[-1]) - 1}")
            ax.plot([], [], color=f"C{int(ds[-1]) - 1}", label=ds)
        ax.set_title(title)
        ax.set_xlabel("time (ms)")
    axes[0].set_ylabel("factor 1 (10 conditions)")
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    save_figure(fig, out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path("lorenz_example"), help="working folder")
    ap.add_argument("--threads", type=int, default=None, help="torch threads per run")
    ap.add_argument("--quick", action="store_true", help="small problem, few epochs")
    ap.add_argument("--with-single", action="store_true", help="also train the single runs")
    args = ap.parse_args(argv)
    root = args.root.resolve()

    # %% Generate synthetic Lorenz datasets (MATLAB: LFADS.Utils.generateDemoDatasets(path,
    # 'nDatasets', 3)): three sessions with their own neurons, driven by the same conditions.
    dataset_path = root / "datasets"
    data = lorenz(
        n_datasets=3,
        n_conditions=20 if args.quick else 65,
        trials_per_condition=(10, 10, 10) if args.quick else (28, 29, 21),
        n_neurons=(35, 26, 35),
        duration_ms=500 if args.quick else 1000,
        bin_ms=10 if args.quick else 20,
        mean_rate_hz=20.0 if args.quick else 10.0,
        seed=0,
    )
    files = write_lorenz_datasets(data, dataset_path)

    # %% Locate and specify the datasets (MATLAB: LorenzExperiment.DatasetCollection and
    # LorenzExperiment.Dataset(dc, 'dataset00N.mat')).
    dc = DatasetCollection(dataset_path, [Dataset.from_file(f) for f in files.values()])

    # %% Build the run collection (MATLAB: 'exampleStitching'; it set rc.version = 201801,
    # which selects the legacy folder layout; the current layout is used here).
    rc = RunCollection(root / "runs", "exampleStitching", dc, [], [])

    # %% Set parameters: the drive script's model plus the alignment matrices that stitch
    # the sessions (par.useAlignmentMatrix = true).
    par = RunParams(
        spike_bin_ms=10 if args.quick else 20,
        use_alignment_matrix=True,
        c_co_dim=0,
        c_batch_size=20 if args.quick else 50,
        c_factors_dim=6 if args.quick else 8,
        c_gen_dim=32 if args.quick else 64,
        c_ic_enc_dim=32 if args.quick else 64,
        c_ic_dim=32 if args.quick else 64,
        c_learning_rate_stop=1e-3,
        c_kl_increase_steps=20 if args.quick else 100,  # x3 for three datasets
        c_l2_increase_steps=20 if args.quick else 100,
        max_epochs=30 if args.quick else 70,
        posterior_mean_kind="posterior_push_mean",
    )
    rc.add_params(par)

    # %% Run specs: one single-session run per dataset, and 'all' with every dataset.
    for ds in dc:
        rc.add_run_spec(RunSpec(ds.single_run_name, [ds.name]))
    rc.add_run_spec(RunSpec("all", dc.names))
    print(rc)

    # %% Prepare the LFADS input files, with alignment matrices for 'all'
    # (MATLAB: rc.prepareForLFADS()).
    rc.prepare()
    stitched = rc.find_runs("all", 1)
    figures = root / "figures"

    # %% How well each session's alignment matrix reconstructs the shared PCs
    # (MATLAB: tool.plotAlignmentReconstruction(3, [1 20 40])).
    print("wrote", *save_alignment_figure(stitched, figures))

    # %% Train (MATLAB: rc.writeShellScriptRunQueue(...) and run_lfads_queue).
    to_train = rc.all_runs if args.with_single else [stitched]
    result = rc.train(to_train, seed=0, threads=args.threads)
    print(result.summary())
    if not result.ok:
        return 1

    # %% Load the results of the stitched run.
    pms = stitched.load_posterior_means()
    for ds, pm in pms.items():
        conditions, avg = pm.condition_averaged("factors")
        print(f"{ds}: {pm.n_trials} trials, condition-averaged factors {avg.shape}")
    params = rc.find_runs("all", 1).load_model_trained_params()
    print(params)
    print(
        "read-out matrices:",
        {k: np.shape(v) for k, v in params.by_dataset("factors_to_logrates_W").items()},
    )

    # %% Plot: factors, the shared PC space of all sessions, rates vs truth, training
    # curves, the generator and read-out matrices.
    paths = (
        save_factor_figures(stitched, figures)
        + save_pca_figure(stitched, figures, max_conditions=10)
        + save_rate_figures(stitched, figures)
        + save_fitlog_figure(stitched, figures)
        + save_param_figures(stitched, figures)
    )
    if args.with_single:
        runs = {ds.single_run_name: rc.find_runs(ds.single_run_name, 1) for ds in dc}
        paths.append(compare_factor1(runs, figures / "factor1_single_runs.png"))
        paths.append(
            compare_factor1({"all (stitched)": stitched}, figures / "factor1_stitched.png")
        )
    for p in paths:
        print("wrote", p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
