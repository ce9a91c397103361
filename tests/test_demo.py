"""``lfads-runs demo``: the end-to-end job, and the R² it reports.

The quick demo runs as a real subprocess (generate, prepare, train through the
local executor, posterior means, model_params, figures, summary.json).

R² floor: a linear map from the factors to the true Lorenz latents, fitted on
training trials, scored on held-out trials. An untrained model (1 epoch) scores
0.06; the quick demo's 60 epochs scored 0.82-0.90 over seeds 0-4 on the
development machine (2 cores, 10 s wall each), and an older, slower engine that
managed only 18 epochs before the time cap still reached 0.60-0.62. A floor of
0.5 fails for a model that did not learn the latents, not for a slow machine
(training is capped at 30 s; the epochs it reached are in summary.json).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lfads_runs import ConfigError
from lfads_runs.demo import QUICK, heldout_r2, run_demo

R2_FLOOR = 0.5
PNG = b"\x89PNG\r\n\x1a\n"


def test_heldout_r2_fits_on_train_trials_and_scores_held_out_ones():
    rng = np.random.default_rng(0)
    latents = rng.standard_normal((40, 30, 3))
    mix = rng.standard_normal((3, 6))
    factors = latents @ mix + 0.5 + 0.01 * rng.standard_normal((40, 30, 6))
    train, test = np.arange(0, 30), np.arange(30, 40)
    assert heldout_r2(factors, latents, train, test) > 0.999
    noise = rng.standard_normal((40, 30, 6))
    assert heldout_r2(noise, latents, train, test) < 0.05
    # a map that only fits the training trials does not carry over: over-fitting shows
    few = heldout_r2(rng.standard_normal((40, 2, 6)), rng.standard_normal((40, 2, 3)),
                     np.arange(2), np.arange(2, 40))  # fmt: skip
    assert few < 0
    with pytest.raises(Exception, match="same trials and time bins"):
        heldout_r2(factors[:, :10], latents, train, test)


def test_demo_refuses_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not empty and was not made by the demo"):
        run_demo(tmp_path, quick=True)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_quick_settings_are_small():
    assert QUICK.params["c_max_train_seconds"] <= 30
    assert sum(t * QUICK.n_conditions for t in QUICK.trials_per_condition) <= 1000


@pytest.mark.slow
def test_quick_demo_end_to_end_in_a_subprocess(tmp_path):
    out = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "MPLBACKEND")}
    proc = subprocess.run(
        [sys.executable, "-m", "lfads_runs", "demo", "--quick", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())

    # R² per dataset, above the floor (see the module docstring)
    assert set(summary["r2"]) == {"dataset001", "dataset002", "dataset003"}
    for name, r2 in summary["r2"].items():
        assert R2_FLOOR < r2 <= 1.0, (name, r2)
        assert f"{name}: {r2:.3f}" in proc.stdout
    assert "held-out validation trials" in summary["r2_method"]

    # timings of every stage, and the training record
    for stage in ("generate", "config", "prepare", "train", "load", "r2", "figures", "total"):
        assert summary["timings_s"][stage] >= 0, stage
    assert summary["training"]["epochs"] >= 1
    assert summary["training"]["lve_step"] is not None

    # files written where the summary says
    paths = summary["paths"]
    for key in ("config", "model_params", "fitlog", "log", "lfads_output", "summary"):
        assert Path(paths[key]).exists(), key
    assert sorted(Path(p).name for p in paths["data"].values()) == [
        "dataset001.h5", "dataset002.h5", "dataset003.h5",
    ]  # fmt: skip
    figures = [Path(p) for group in paths["figures"].values() for p in group]
    assert {p.name for p in figures} >= {
        "factors_dataset001.png", "stitching_pca.png", "rates_vs_truth_dataset003.png",
        "training_curves.png", "alignment_reconstruction.png", "generator_W.png",
        "readout_matrices.png",
    }  # fmt: skip
    for p in figures:
        assert p.read_bytes().startswith(PNG), p

    # the printed summary: R², the model-parameter table, where the figures are
    assert "ModelTrainedParameters(datasets dataset001, dataset002, dataset003" in proc.stdout
    assert "factors_to_logrates_W" in proc.stdout
    assert str(out / "figures") in proc.stdout

    # the config it wrote is a normal collection: the run is done and loads again
    from lfads_runs import RunCollection

    rc = RunCollection.from_yaml(paths["config"])
    run = rc.find_runs("all", 1)
    assert run.is_done
    assert run.load_model_trained_params().global_step == summary["training"]["lve_step"]

    # new trials through our engine's checkpoint give what the posterior files hold
    import h5py

    pm = run.load_posterior_means()["dataset002"]
    with h5py.File(paths["data"]["dataset002"]) as f:
        counts = f["counts"][()]
    held_out = pm.valid_inds - 1
    new = run.infer(counts[held_out], dataset="dataset002", checkpoint="lve")
    np.testing.assert_allclose(new.factors, pm.factors[held_out], rtol=0, atol=1e-5)
    np.testing.assert_allclose(new.rates, pm.rates[held_out], rtol=1e-5, atol=1e-6)
