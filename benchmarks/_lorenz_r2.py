"""The Lorenz stitching run of issue 4's time-to-R² reference, and its R² score.

Shared by bench_time_to_r2.py and bench_quality_per_epoch.py: 3 datasets of 35,
26 and 35 neurons, 65 conditions, 1 s trials at 10 ms (T = 100), factors 8,
generator 64, IC encoder 64, ic_dim 64, no controller, batch 150,
lfads-run-manager defaults otherwise (KL/L2 ramps of 900 x 3 steps, learning
rate 0.01, alignment matrices).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def prepare_run(out: Path, *, rate_hz: float = 5.0, seed: int = 0, **param_changes: Any):
    """(run, latents by dataset at 10 ms) for the benchmark data written under ``out``."""
    from lfads_runs import Dataset, RunCollection, RunParams, RunSpec
    from lfads_runs.data.synthetic import lorenz, write_lorenz_datasets

    data = lorenz(
        n_datasets=3,
        n_conditions=65,
        trials_per_condition=(28, 29, 21),
        n_neurons=(35, 26, 35),
        duration_ms=1000,
        bin_ms=1,
        mean_rate_hz=rate_hz,
        seed=seed,
    )
    files = write_lorenz_datasets(data, out / "data")
    datasets = [Dataset(name=n, path=p) for n, p in files.items()]
    params = RunParams(
        spike_bin_ms=10,
        use_alignment_matrix=True,
        c_factors_dim=8,
        c_gen_dim=64,
        c_ic_enc_dim=64,
        c_ic_dim=64,
        c_co_dim=0,
        c_batch_size=150,
        c_learning_rate_stop=1e-3,
        **param_changes,
    )
    rc = RunCollection(out / "runs", "bench_r2", datasets, [RunSpec("all", list(files))], [params])
    run = rc.find_runs("all", 1)
    run.prepare()
    latents = {}
    for ds in data.datasets:  # 1 ms latents -> 10 ms bins
        lat = ds.latents
        latents[ds.name] = lat.reshape(lat.shape[0], lat.shape[1] // 10, 10, 3).mean(axis=2)
    return run, latents


def r2_by_dataset(run, latents: dict[str, np.ndarray], source) -> dict[str, float]:
    """Held-out factor -> latent R² per dataset for the weights in ``source``.

    ``source`` is anything :func:`lfads_runs.engine.load_model` accepts (an output
    folder, a checkpoint prefix of ours or of TensorFlow LFADS, a model_params file).
    A linear map from posterior-mean factors to the true latents is fitted on the
    training trials and scored on the validation trials.
    """
    from lfads_runs.demo import heldout_r2
    from lfads_runs.engine import infer, load_model

    spec = run.model_spec()
    info = run.load_input_info()
    model = load_model(source, spec)
    out = {}
    for name in run.dataset_names:
        counts = info[name].counts
        binned = counts.reshape(counts.shape[0], counts.shape[1] // 10, 10, -1).sum(axis=2)
        res = infer(model, spec, binned, dataset=name, kind="posterior_push_mean")
        out[name] = heldout_r2(
            res["factors"], latents[name], info[name].train_inds - 1, info[name].valid_inds - 1
        )
    return out
