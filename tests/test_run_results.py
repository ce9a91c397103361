"""Run.load_* on a run folder holding outputs written by the original TensorFlow LFADS."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import manifest, n_trials

from lfads_runs import (
    CheckpointError,
    Dataset,
    MissingOutputError,
    ModelParamsUnavailable,
    RunCollection,
    RunParams,
    RunSpec,
)
from lfads_runs.io.input_info import InputInfo, write_input_info
from lfads_runs.io.posterior_files import read_posterior_file

CASE = "stitch2"
DATASETS = ("dataset001", "dataset002")


@pytest.fixture
def tf_run(tmp_path, tf_fixtures):
    """A collection whose run 'all' holds the fixture's TF inputs and outputs."""
    case = tf_fixtures / CASE
    ds = [Dataset(name=n, path=tmp_path / f"{n}.h5") for n in DATASETS]
    params = RunParams(
        spike_bin_ms=10,
        c_factors_dim=6,
        c_ic_enc_dim=16,
        c_ic_dim=16,
        c_gen_dim=16,
        c_co_dim=0,
        c_batch_size=16,
        use_alignment_matrix=True,
    )
    rc = RunCollection(tmp_path / "runs", "tf", ds, [RunSpec("all", DATASETS)], [params])
    run = rc.find_runs("all", 1)
    shutil.copytree(case / "lfadsOutput", run.path_lfads_output)
    run.path_lfads_input.mkdir(parents=True)
    with h5py.File(case / "truth.h5") as truth:
        for name in DATASETS:
            shutil.copy(case / "lfadsInput" / f"lfads_{name}.h5", run.input_files[name])
            g = truth[name]
            write_input_info(
                run.input_info_files[name],
                InputInfo(
                    train_inds=g["train_inds"][()],
                    valid_inds=g["valid_inds"][()],
                    data_hash=run.data_hash.removeprefix("data_"),
                    time_ms=np.arange(500, dtype=float),
                    bin_ms=1.0,
                    condition_id=g["condition_id"][()],
                ),
            )
    return run


def test_load_posterior_means_in_original_trial_order(tf_run):
    pms = tf_run.load_posterior_means(kind="posterior_push_mean")
    assert list(pms) == list(DATASETS)
    pm = pms["dataset002"]
    valid = read_posterior_file(
        tf_run.paths.posterior_file("dataset002", "valid", "posterior_push_mean")
    )
    train = read_posterior_file(
        tf_run.paths.posterior_file("dataset002", "train", "posterior_push_mean")
    )
    assert pm.factors.shape == (n_trials(CASE)["all"], 50, 6)
    np.testing.assert_array_equal(pm.factors[0], valid["factors"][0])  # trial 1 is valid
    np.testing.assert_array_equal(pm.factors[1], train["factors"][0])  # trial 2 is train
    every = manifest(CASE)["synthetic_data"]["train_to_test_ratio"] + 1
    # the second validation trial (1-based trial 1 + every)
    np.testing.assert_array_equal(pm.rates[every], valid["output_dist_params"][1])
    np.testing.assert_allclose(pm.rates_hz, pm.rates * 1000 / 10)
    assert pm.condition_ids.shape == (n_trials(CASE)["all"],)
    assert tf_run.load_posterior_means(kind="posterior_push_mean") is pms  # cached


def test_load_fit_log_and_input_info(tf_run):
    log = tf_run.load_fit_log()
    fitlog = manifest(CASE)["fitlog"]
    assert log.n_epochs == fitlog["rows"] and log.steps[-1] == fitlog["last_printed"]["step"]
    assert log.step_lve == manifest(CASE)["lve_step"]
    info = tf_run.load_input_info()
    every = manifest(CASE)["synthetic_data"]["train_to_test_ratio"] + 1
    assert info["dataset001"].valid_inds[:3].tolist() == [1, 1 + every, 1 + 2 * every]


def test_collection_lists_runs_without_results(tf_run, tmp_path):
    rc = tf_run.collection
    rc.add_params(RunParams(spike_bin_ms=10, c_factors_dim=7))
    results = rc.load_posterior_means(kind="posterior_push_mean")
    assert list(results.loaded) == [("all", 1)]
    assert [(r.name, r.param_index) for r, _ in results.missing] == [("all", 2)]
    with pytest.raises(MissingOutputError, match="prepare the run first"):
        rc.find_runs("all", 2).load_posterior_means()


def test_load_model_trained_params_dumps_from_the_tf_checkpoint(tf_run):
    """model_params missing: dumped from checkpoint_lve, bit-equal to TensorFlow's own file."""
    reference = tf_run.file_model_params.with_name("reference_params")
    tf_run.file_model_params.rename(reference)
    params = tf_run.load_model_trained_params()
    assert tf_run.file_model_params.is_file()
    assert params.dataset_names == DATASETS
    assert params.global_step == manifest(CASE)["lve_step"]
    with h5py.File(reference) as ref, h5py.File(tf_run.file_model_params) as new:
        assert set(ref) == set(new)
        for key in ref:
            np.testing.assert_array_equal(ref[key][()], new[key][()])
            assert ref[key].dtype == new[key].dtype
    with h5py.File(reference) as ref:
        np.testing.assert_array_equal(
            params.x_to_infac_W[1], ref["LFADS_x_2_infac_dataset002.h5_W:0"][()]
        )
    assert tf_run.load_model_trained_params() is params  # cached
    assert tf_run.load_model_trained_params(reload=True) is not params


def test_load_model_trained_params_unavailable(tf_run):
    for f in tf_run.path_lfads_output.iterdir():
        if "ckpt" in f.name or f.name in ("model_params", "checkpoint", "checkpoint_lve"):
            f.unlink()
    with pytest.raises(ModelParamsUnavailable, match="checkpoint"):
        tf_run.load_model_trained_params()
    assert not tf_run.file_model_params.exists()


def test_dump_refuses_a_checkpoint_of_another_model(tf_run):
    tf_run.file_model_params.unlink()
    rc = tf_run.collection
    rc.add_params(tf_run.params.with_changes(c_gen_dim=32))
    other = rc.find_runs("all", 2)
    other.path.parent.mkdir(parents=True)
    tf_run.path.rename(other.path)
    with pytest.raises(CheckpointError, match="does not hold this model"):
        other.load_model_trained_params()
    assert not other.file_model_params.exists()


def test_cli_dump_and_plot_params(tf_run, tmp_path):
    import json
    import subprocess
    import sys

    cfg = tmp_path / "tf.yaml"
    p = tf_run.params
    cfg.write_text(
        "name: tf\nroot: ./runs\ndatasets: [dataset001.h5, dataset002.h5]\n"
        "run_specs: [{name: all, datasets: all}]\n"
        f"params: [{json.dumps(p.differences())}]\n"
    )
    tf_run.file_model_params.unlink()

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "lfads_runs", *args], capture_output=True, text=True, timeout=300
        )

    proc = cli("dump", str(cfg), "all", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert rows[0]["ok"] and rows[0]["global_step"] == manifest(CASE)["lve_step"]
    assert tf_run.file_model_params.is_file()
    proc = cli("plot", "params", str(cfg), "all", "1", "-o", str(tmp_path / "figs"))
    assert proc.returncode == 0, proc.stderr
    for name in json.loads(proc.stdout):
        assert Path(name).parent == tmp_path / "figs" and Path(name).stat().st_size > 1000
