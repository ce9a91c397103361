"""MATLAB's ``LorenzExperiment/drive_script_stitching.m`` translated line by line.

Each MATLAB statement is quoted as a comment above its Python translation. The
data come in through a ``Run`` subclass (``lorenz_experiment.LorenzRun``, MATLAB's
``LorenzExperiment.Run.generateCountsForDataset``), exactly as a MATLAB lab plugs
its own data in. Unlike the MATLAB script, this one also trains and loads results.

    python examples/drive_script_multisession.py --root /tmp/lorenz_example
    python examples/drive_script_multisession.py --quick --executor slurm  # submitit local
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # lorenz_experiment next to this file

import lorenz_experiment as LorenzExperiment  # noqa: E402

from lfads_runs import DatasetCollection, RunCollection, RunParams, RunSpec  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path("lorenz_example"), help="working folder")
    ap.add_argument("--quick", action="store_true", help="small data, tiny model, few epochs")
    ap.add_argument("--threads", type=int, default=None, help="torch threads per run")
    ap.add_argument("--executor", default="local", help="local, slurm (submitit local), ray")
    args = ap.parse_args(argv)
    root = args.root.resolve()
    quick = args.quick

    # %% Generate synthetic Lorenz datasets
    # datasetPath = '~/lorenz_example/datasets';
    dataset_path = root / "datasets"
    # if ~exist(fullfile(datasetPath, 'dataset001.mat'), 'file')
    if not (dataset_path / "dataset001.mat").exists():
        #     LFADS.Utils.generateDemoDatasets(datasetPath, 'nDatasets', 3);
        LorenzExperiment.generate_demo_datasets(
            dataset_path,
            n_datasets=3,
            **(
                dict(n_conditions=4, trials_per_condition=12, n_neurons=(12, 10, 11),
                     duration_ms=100)
                if quick else {}
            ),
        )  # fmt: skip

    # %% Locate and specify the datasets
    # dc = LorenzExperiment.DatasetCollection(datasetPath);
    # dc.name = 'lorenz_example';
    # LorenzExperiment.Dataset(dc, 'dataset001.mat');  (and 002, 003)
    dc = DatasetCollection(
        dataset_path,
        [LorenzExperiment.LorenzDataset.from_file(f"dataset00{i}.mat") for i in (1, 2, 3)],
    )
    # dc.loadInfo;
    dc.load_info()
    # dc.getDatasetInfoTable()
    print(dc.get_dataset_info_table())

    # %% Set some hyperparameters
    # par = LorenzExperiment.RunParams;
    par = RunParams()
    # par.name = 'first_attempt_stitching';  (a label only: not hashed)
    # par.useAlignmentMatrix = true;
    # par.spikeBinMs = 2;
    # par.c_co_dim = 0;
    # par.c_batch_size = 150;
    # par.c_factors_dim = 8;
    # par.c_gen_dim = 64;
    # par.c_ic_enc_dim = 64;
    # par.c_learning_rate_stop = 1e-3;
    par = par.with_changes(
        use_alignment_matrix=True,
        spike_bin_ms=2 if not quick else 5,
        c_co_dim=0,
        c_batch_size=150 if not quick else 8,
        c_factors_dim=8 if not quick else 3,
        c_gen_dim=64 if not quick else 16,
        c_ic_enc_dim=64 if not quick else 16,
        c_learning_rate_stop=1e-3,
    )
    if quick:  # tiny training for CI
        par = par.with_changes(
            c_ic_dim=8, c_max_epochs=3, num_samples_posterior=4, c_learning_rate_n_to_compare=100
        )

    # %% Running a multi-dataset stitching run
    # runRoot = '~/lorenz_example/runs';
    run_root = root / "runs"
    # rc = LorenzExperiment.RunCollection(runRoot, 'exampleStitching', dc);
    rc = RunCollection(
        run_root, "exampleStitching", dc, [], [], run_class=LorenzExperiment.LorenzRun
    )
    # rc.version = 201801;
    rc.version = 201801
    # rc.addRunSpec(LorenzExperiment.RunSpec('all', dc, 1:dc.nDatasets));
    rc.add_run_spec(RunSpec("all", range(1, dc.n_datasets + 1)))
    # rc.addParams(par);
    rc.add_params(par)

    # %% Generating accompanying single-dataset models
    # for iR = 1:dc.nDatasets
    for i_r in range(1, dc.n_datasets + 1):
        #     runSpec = LorenzExperiment.RunSpec(dc.datasets(iR).getSingleRunName(), dc, iR);
        run_spec = RunSpec(dc.datasets[i_r - 1].single_run_name, [i_r])
        #     rc.addRunSpec(runSpec);
        rc.add_run_spec(run_spec)

    # %% Verifying the alignment matrices
    # run = rc.findRuns('all', 1);
    run = rc.find_runs("all", 1)
    # run.doMultisessionAlignment();
    # nFactorsPlot = 3;
    # conditionsToPlot = [1 20 40];
    # tool = run.multisessionAlignmentTool;
    tool = run.do_multisession_alignment()
    n_factors_plot = 3
    conditions_to_plot = [1, 20, 40] if not quick else [1, 2, 4]
    print("alignment matrices:", {k: v.shape for k, v in tool.matrices.items()})
    # tool.plotAlignmentReconstruction(nFactorsPlot, conditionsToPlot);
    try:
        from lfads_runs.plots.alignment import save_alignment_reconstruction
    except ImportError:  # the plot extra is optional
        pass
    else:
        figure = root / "figures" / "alignment_reconstruction.png"
        figure.parent.mkdir(parents=True, exist_ok=True)
        save_alignment_reconstruction(tool, figure, n_factors_plot, conditions_to_plot)
        print("wrote", figure.name)

    # %% Prepare LFADS input and shell scripts
    # rc.prepareForLFADS();
    rc.prepare()

    # rc.writeShellScriptRunQueue('display', 0, 'virtualenv', 'tensorflow');  and run it
    options = {"cluster": "local"} if args.executor == "slurm" else None
    result = rc.train(seed=0, threads=args.threads, executor=args.executor,
                      executor_options=options)  # fmt: skip
    print(result.summary())
    if not result.ok:
        return 1

    # %% Looking at the results (docs/analysis.md)
    # runStitched = rc.findRuns('all', 1);
    run_stitched = rc.find_runs("all", 1)
    # pm = runStitched.loadPosteriorMeans();
    pm = run_stitched.load_posterior_means()
    for ds, p in pm.items():
        print(f"{ds}: factors {p.factors.shape}, rates {p.rates.shape}")
    print("finite:", all(np.isfinite(p.factors).all() for p in pm.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
