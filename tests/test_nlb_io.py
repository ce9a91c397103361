"""NLB tensors in (lfads-runs nlb import), a trained model's submission out (nlb export),
scored by nlb_tools.evaluation itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from lfads_runs import DataError
from lfads_runs.data.nlb import read_nlb_tensors, write_nlb_input
from lfads_runs.io.lfads_input import read_lfads_input
from lfads_runs.results.nlb_metrics import bits_per_spike

N_IN, N_OUT, T, TF = 8, 4, 20, 4


def _tensors(path: Path, *, n_train=60, n_eval=16, seed=0, drop=(), **override) -> Path:
    """An NLB-shaped file from Poisson rates with shared low-dimensional structure."""
    rng = np.random.default_rng(seed)
    n = n_train + n_eval
    phase = rng.uniform(0, 2 * np.pi, size=n)
    t = np.arange(T + TF) / 6.0
    latent = np.stack([np.sin(t[None] + phase[:, None]), np.cos(t[None] + phase[:, None])], -1)
    W = rng.normal(0, 0.8, size=(2, N_IN + N_OUT))
    rates = np.exp(latent @ W + 0.3)
    spikes = rng.poisson(rates)
    arrays = {
        "train_spikes_heldin": spikes[:n_train, :T, :N_IN],
        "train_spikes_heldout": spikes[:n_train, :T, N_IN:],
        "train_spikes_heldin_forward": spikes[:n_train, T:, :N_IN],
        "train_spikes_heldout_forward": spikes[:n_train, T:, N_IN:],
        "eval_spikes_heldin": spikes[n_train:, :T, :N_IN],
        # targets, kept in the same file for the test's evaluation
        "eval_spikes_heldout": spikes[n_train:, :T, N_IN:],
        "eval_spikes_heldin_forward": spikes[n_train:, T:, :N_IN],
        "eval_spikes_heldout_forward": spikes[n_train:, T:, N_IN:],
    }
    arrays.update(override)
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            if k not in drop:
                f[k] = v
    return path


def test_import_writes_the_split_and_forward_bins(tmp_path):
    """The input file holds held-in then held-out neurons, forward bins last, split keys."""
    t = read_nlb_tensors(_tensors(tmp_path / "t.h5"))
    path = write_nlb_input(t, tmp_path / "in", name="maze")
    inp = read_lfads_input(path)
    assert path.name == "lfads_maze.h5"
    assert inp.train_data.shape[1:] == (T + TF, N_IN + N_OUT)
    assert inp.train_data.shape[0] + inp.valid_data.shape[0] == 60
    assert inp.extras["heldout_neurons"].tolist() == list(range(N_IN, N_IN + N_OUT))
    assert inp.extras["forward_bins"].item() == TF
    first_valid = int(inp.valid_inds[0]) - 1
    assert np.array_equal(inp.valid_data[0, :T, :N_IN], t.train_heldin[first_valid])
    assert np.array_equal(inp.valid_data[0, T:, N_IN:], t.train_heldout_forward[first_valid])


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"drop": ("train_spikes_heldout",)}, "missing NLB key"),
        ({"drop": ("train_spikes_heldout_forward",)}, "needs both"),
        ({"eval_spikes_heldin": np.zeros((5, T, N_IN + 1))}, "differ in bins/neurons"),
        ({"train_spikes_heldout": np.zeros((59, T, N_OUT))}, "differ in trials"),
        ({"train_spikes_heldin": np.full((60, T, N_IN), 0.5)}, "whole spike counts"),
    ],
)
def test_bad_nlb_files_are_refused_before_writing(tmp_path, kw, match):
    """Missing keys or mismatched shapes: one DataError, no input file."""
    path = _tensors(tmp_path / "t.h5", **kw)
    with pytest.raises(DataError, match=match):
        write_nlb_input(read_nlb_tensors(path), tmp_path / "in")
    assert not (tmp_path / "in").exists()


def test_cli_import_error_is_one_line_and_writes_nothing(tmp_path):
    """The command line reports a bad tensor file as one error line, exit code 1."""
    path = _tensors(tmp_path / "t.h5", drop=("eval_spikes_heldin",))
    p = subprocess.run(
        [sys.executable, "-m", "lfads_runs", "nlb", "import", str(path), str(tmp_path / "in")],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "eval_spikes_heldin" in lines[0]
    assert not (tmp_path / "in").exists()


def test_trained_submission_scores_as_nlb_tools_scores_it(tmp_path):
    """import -> train (co-smoothing + forward prediction) -> export; nlb_tools agrees."""
    pytest.importorskip("torch")
    nlb = pytest.importorskip("nlb_tools.evaluation")
    pytest.importorskip("sklearn")
    src = _tensors(tmp_path / "t.h5")
    run = subprocess.run(
        [sys.executable, "-m", "lfads_runs", "nlb", "import", str(src), str(tmp_path / "in")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(run.stdout)["fp_len"] == TF
    from lfads_runs.engine import train
    from lfads_runs.hparams import Hyperparameters

    hps = Hyperparameters(
        batch_size=8, factors_dim=4, gen_dim=16, ic_dim=8, ic_enc_dim=8, co_dim=0,
        kl_increase_steps=30, l2_increase_steps=30, l2_gen_scale=10.0, fp_len=TF, cd_rate=0.2,
        max_epochs=15,
    )  # fmt: skip
    train(tmp_path / "in", tmp_path / "out", hps, seed=0, log=lambda m: None)
    sub = tmp_path / "submission.h5"
    cmd = [
        sys.executable, "-m", "lfads_runs", "nlb", "export", str(src), str(tmp_path / "in"),
        str(tmp_path / "out"), str(sub), "--dataset", "mc_maze", "--kind",
        "posterior_push_mean", "--checkpoint", "latest",
    ]  # fmt: skip
    subprocess.run(cmd, capture_output=True, text=True, check=True)
    with h5py.File(src) as f:
        target = {k: f[k][()] for k in f}
    with h5py.File(sub) as f:
        got = {k: f["mc_maze"][k][()] for k in f["mc_maze"]}
    assert got["eval_rates_heldout"].shape == (16, T, N_OUT)
    assert got["eval_rates_heldin_forward"].shape == (16, TF, N_IN)
    nlb_target = {
        "mc_maze": {
            "eval_spikes_heldout": target["eval_spikes_heldout"],
            "train_behavior": np.zeros((60, T, 2)),
            "eval_behavior": np.zeros((16, T, 2)),
            "eval_spikes_heldin_forward": target["eval_spikes_heldin_forward"],
            "eval_spikes_heldout_forward": target["eval_spikes_heldout_forward"],
        }
    }
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the zero behaviour makes sklearn's R² warn
        result = nlb.evaluate(nlb_target, {"mc_maze": got})[0]["mc_maze_split"]
    ours = bits_per_spike(got["eval_rates_heldout"], target["eval_spikes_heldout"])
    assert abs(result["co-bps"] - ours) <= 1e-9 * abs(ours)
    fwd_r = np.dstack([got["eval_rates_heldin_forward"], got["eval_rates_heldout_forward"]])
    fwd_y = np.dstack([target["eval_spikes_heldin_forward"], target["eval_spikes_heldout_forward"]])
    assert abs(result["fp-bps"] - bits_per_spike(fwd_r, fwd_y)) <= 1e-9 * abs(result["fp-bps"])
    assert ours > 0.0  # held-out neurons are predicted from the held-in population
    with pytest.raises(subprocess.CalledProcessError):  # never overwrites a submission
        subprocess.run(cmd, capture_output=True, text=True, check=True)


def test_yaml_loader_prepares_the_nlb_split(tmp_path):
    """``loader: lfads_runs.data.nlb:nlb_dataset`` gives prepared inputs with the NLB split."""
    import textwrap

    from lfads_runs import RunCollection

    src = _tensors(tmp_path / "t.h5")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        textwrap.dedent(f"""
        name: nlb
        root: {tmp_path / "runs"}
        datasets:
          items:
            - name: maze
              file: {src}
              loader: "lfads_runs.data.nlb:nlb_dataset"
        run_specs:
          - {{name: single_maze, datasets: [maze]}}
        params:
          - {{spikeBinMs: 5, c_batch_size: 8, c_fp_len: {TF}}}
        """)
    )
    run = RunCollection.from_yaml(cfg).all_runs[0]
    run.prepare()
    inp = read_lfads_input(run.input_files["maze"])
    assert inp.extras["heldout_neurons"].tolist() == list(range(N_IN, N_IN + N_OUT))
    spec = run.model_spec()
    assert spec.num_steps == T + TF and spec.num_steps_encoded == T
    assert spec.datasets[0].n_encoded == N_IN
