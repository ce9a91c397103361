"""``lfads-runs evaluate``: NLB metrics of a trained run's posterior means."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from lfads_runs import RunCollection  # noqa: E402
from lfads_runs.io.lfads_input import read_lfads_input  # noqa: E402
from lfads_runs.results.nlb_metrics import bits_per_spike  # noqa: E402

_YAML = """
name: evaluate
root: {root}
datasets:
  items:
    - name: dataset001
      loader: "lfads_runs.data.synthetic:lorenz_dataset"
      loader_args: {{dataset: dataset001, n_datasets: 1, n_conditions: 10,
                    trials_per_condition: 6, n_neurons: [16], duration_ms: 240,
                    bin_ms: 10, seed: 1, mean_rate_hz: 40.0}}
      heldout_neurons: [2, 7, 11]
run_specs:
  - {{name: single_dataset001, datasets: [dataset001]}}
params:
  - {{spikeBinMs: 10, c_batch_size: 4, c_factors_dim: 4, c_gen_dim: 16, c_ic_enc_dim: 8,
     c_ic_dim: 8, c_co_dim: 0, c_max_epochs: 3, c_fp_len: 4, c_cd_rate: 0.2,
     c_kl_increase_steps: 10, c_l2_increase_steps: 10}}
"""


def test_evaluate_reports_co_bps_and_fp_bps_of_the_posterior_means(tmp_path):
    """The command's numbers are NLB bits/spike of the run's rates on its valid trials."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(textwrap.dedent(_YAML.format(root=tmp_path / "runs")))
    run = RunCollection.from_yaml(cfg).all_runs[0]
    run.prepare()
    run.train(seed=0)
    run.sample_posterior(kind="posterior_push_mean")
    hps = json.loads(next(run.path_lfads_output.glob("hyperparameters-*.txt")).read_text())
    assert hps["fp_len"] == 4 and hps["cd_rate"] == 0.2  # the RunParams reached the engine
    assert hps["dataset_heldin"] == {"dataset001.h5": [0, 1, 3, 4, 5, 6, 8, 9, 10, 12, 13, 14, 15]}
    p = subprocess.run(
        [sys.executable, "-m", "lfads_runs", "evaluate", str(cfg), "--json",
         "--kind", "posterior_push_mean"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    (row,) = json.loads(p.stdout)
    valid = row["datasets"]["dataset001"]["valid"]
    assert set(valid) == {"bps", "bps_heldin", "co_bps", "fp_bps"}
    pm = run.load_posterior_means("posterior_push_mean")["dataset001"]
    inp = read_lfads_input(run.input_files["dataset001"])
    rates = pm.rates[pm.valid_inds - 1]
    y = inp.valid_data
    assert valid["co_bps"] == pytest.approx(
        bits_per_spike(rates[:, :20, [2, 7, 11]], y[:, :20, [2, 7, 11]]), rel=1e-12
    )
    assert valid["fp_bps"] == pytest.approx(bits_per_spike(rates[:, 20:], y[:, 20:]), rel=1e-12)
    assert np.isfinite(row["selection"]["valid_cobps"])
    text = subprocess.run(
        [sys.executable, "-m", "lfads_runs", "evaluate", str(cfg), "--kind", "posterior_push_mean"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "co_bps" in text and "dataset001" in text


def test_evaluate_without_posterior_is_one_error_per_run(tmp_path):
    """An untrained run: exit code 1 and one error line naming the run."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(textwrap.dedent(_YAML.format(root=tmp_path / "runs")))
    p = subprocess.run(
        [sys.executable, "-m", "lfads_runs", "evaluate", str(cfg)], capture_output=True, text=True
    )
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "single_dataset001" in lines[0]
    assert not Path(tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("*.h5"))
