"""Run.infer: new trials through the trained weights of TensorFlow LFADS's fixture runs.

The fixtures' ``posterior_push_mean`` files hold TensorFlow's outputs for the
validation trials; ``run.infer`` on the same trials (as new data) must give them
back, from the TF checkpoint and from ``model_params`` alike.
"""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
from conftest import manifest

pytest.importorskip("torch")

from lfads_runs import (  # noqa: E402
    CheckpointError,
    ConfigError,
    DataError,
    Dataset,
    RunCollection,
    RunParams,
    RunSpec,
)
from lfads_runs.io.input_info import InputInfo, write_input_info  # noqa: E402
from lfads_runs.io.lfads_input import read_lfads_input  # noqa: E402
from lfads_runs.io.posterior_files import read_posterior_file  # noqa: E402

CASES = {
    "stitch2": (
        ("dataset001", "dataset002"),
        dict(c_factors_dim=6, c_ic_enc_dim=16, c_ic_dim=16, c_gen_dim=16, c_co_dim=0,
             use_alignment_matrix=True),
    ),
    "ctrl1": (
        ("dataset001",),
        dict(c_factors_dim=5, c_ic_enc_dim=12, c_ic_dim=8, c_gen_dim=14, c_co_dim=2,
             c_ci_enc_dim=10, c_con_dim=12),
    ),
    "extin1": (
        ("dataset001",),
        dict(c_factors_dim=5, c_ic_enc_dim=12, c_ic_dim=8, c_gen_dim=14, c_co_dim=2,
             c_ci_enc_dim=8, c_con_dim=10, c_ext_input_dim=1, c_inject_ext_input_to_gen=True),
    ),
    "gauss1": (
        ("dataset001",),
        dict(c_factors_dim=5, c_ic_enc_dim=12, c_ic_dim=8, c_gen_dim=14, c_co_dim=1,
             c_ci_enc_dim=8, c_con_dim=10, c_output_dist="gaussian"),
    ),
}  # fmt: skip
#: Outputs that do not depend on sampling (push-mean: g0 and u at their posterior means).
FIELDS = {
    "factors": "factors",
    "gen_states": "generator_states",
    "gen_ics": "generator_ics",
    "post_g0_mean": "post_g0_mean",
    "post_g0_logvar": "post_g0_logvar",
    "controller_outputs": "controller_outputs",
}


def _tf_run(tmp_path, tf_fixtures, case):
    """A collection whose only run holds the fixture's inputs and TensorFlow outputs."""
    names, kw = CASES[case]
    params = RunParams(
        spike_bin_ms=10,
        c_batch_size=16,
        # the fixture's ramps, so that the batch costs match too
        c_kl_increase_steps=20,
        c_l2_increase_steps=20,
        scale_increase_steps_with_datasets=False,
        **kw,
    )
    ds = [Dataset(name=n, path=tmp_path / f"{n}.h5") for n in names]
    rc = RunCollection(tmp_path / "runs", "tf", ds, [RunSpec("all", names)], [params])
    run = rc.find_runs("all", 1)
    shutil.copytree(tf_fixtures / case / "lfadsOutput", run.path_lfads_output)
    run.path_lfads_input.mkdir(parents=True)
    for n in names:
        shutil.copy(tf_fixtures / case / "lfadsInput" / f"lfads_{n}.h5", run.input_files[n])
    return run


def _check_equal(pm, ref, where, costs: bool):
    for key, field in FIELDS.items():
        if key in ref:
            np.testing.assert_allclose(
                getattr(pm, field), ref[key], rtol=0, atol=1e-5, err_msg=f"{where} {key}"
            )
    # rates reach ~100 counts per bin: float32 round-off is relative
    if pm.output_dist == "poisson":
        np.testing.assert_allclose(pm.rates, ref["output_dist_params"], rtol=1e-5, atol=1e-5)
    else:
        both = np.concatenate([pm.means, pm.variances], axis=2)
        np.testing.assert_allclose(both, ref["output_dist_params"], rtol=1e-5, atol=1e-5)
    if costs:  # no controller: no sampled KL, so the batch costs are deterministic
        np.testing.assert_allclose(pm.costs, ref["costs"], rtol=2e-6)


@pytest.mark.parametrize(
    ("case", "checkpoint"),
    [(c, "lve") for c in CASES] + [("stitch2", "model_params"), ("ctrl1", "model_params")],
)
def test_infer_equals_tensorflow_push_mean(tmp_path, tf_fixtures, case, checkpoint):
    run = _tf_run(tmp_path, tf_fixtures, case)
    for name in run.dataset_names:
        inp = read_lfads_input(run.input_files[name])
        ref = read_posterior_file(run.paths.posterior_file(name, "valid", "posterior_push_mean"))
        pm = run.infer(
            inp.valid_data, dataset=name, checkpoint=checkpoint, ext_inputs=inp.valid_ext_input
        )
        assert pm.n_trials == inp.valid_data.shape[0]
        assert pm.train_step == manifest(case)["lve_step"]
        assert pm.valid_inds.size == 0 and pm.train_inds.tolist()[:2] == [1, 2]
        np.testing.assert_array_equal(pm.binned_data, inp.valid_data)
        if inp.valid_ext_input is not None:
            np.testing.assert_array_equal(pm.binned_external_inputs, inp.valid_ext_input)
        if pm.rates is not None:
            np.testing.assert_allclose(pm.rates_hz, pm.rates * 100.0)  # 10 ms bins
        _check_equal(pm, ref, f"{case} {name} {checkpoint}", costs=case == "stitch2")


def test_infer_rebins_counts_at_the_original_resolution(tmp_path, tf_fixtures):
    """Counts in 1 ms bins (the inputInfo's resolution) are summed into 10 ms bins like prepare."""
    run = _tf_run(tmp_path, tf_fixtures, "ctrl1")
    inp = read_lfads_input(run.input_files["dataset001"])
    info = InputInfo(
        train_inds=inp.train_inds,
        valid_inds=inp.valid_inds,
        data_hash=run.data_hash.removeprefix("data_"),
        time_ms=np.arange(500, dtype=float) - 100.0,
        bin_ms=1.0,
    )
    write_input_info(run.input_info_files["dataset001"], info)
    fine = np.zeros((inp.valid_data.shape[0], 500, inp.valid_data.shape[2]), np.int64)
    fine[:, 3::10] = inp.valid_data  # every count in the 4th ms of its 10 ms bin
    ref = read_posterior_file(
        run.paths.posterior_file("dataset001", "valid", "posterior_push_mean")
    )
    pm = run.infer(fine)  # single-dataset run: dataset optional; length tells the resolution
    _check_equal(pm, ref, "rebinned", costs=False)
    np.testing.assert_array_equal(pm.binned_data, inp.valid_data)
    assert pm.raw_counts.shape == fine.shape
    np.testing.assert_array_equal(pm.time_ms[:3], [-100.0, -90.0, -80.0])
    # Explicit bin width: 2 ms bins (250 of them) work too.
    two = fine.reshape(fine.shape[0], 250, 2, -1).sum(axis=2)
    pm2 = run.infer(two, bin_ms=2)
    np.testing.assert_allclose(pm2.factors, pm.factors, rtol=0, atol=1e-6)
    with pytest.raises(DataError, match=r"the model takes 50 bins of 10 ms .* or 500 bins of 1 ms"):
        run.infer(two)


def test_infer_sample_and_average_is_seeded(tmp_path, tf_fixtures):
    run = _tf_run(tmp_path, tf_fixtures, "ctrl1")
    x = read_lfads_input(run.input_files["dataset001"]).valid_data[:5]
    a = run.infer(x, kind="posterior_sample_and_average", n_samples=8, seed=3)
    b = run.infer(x, kind="posterior_sample_and_average", n_samples=8, seed=3)
    push = run.infer(x)
    np.testing.assert_array_equal(a.factors, b.factors)
    assert a.kind == "posterior_sample_and_average"
    # the average of 8 samples is near, not at, the push-mean
    assert 0 < np.abs(a.factors - push.factors).mean() < 0.5


def test_infer_errors_are_clear(tmp_path, tf_fixtures):
    run = _tf_run(tmp_path, tf_fixtures, "stitch2")
    x = read_lfads_input(run.input_files["dataset002"]).valid_data
    with pytest.raises(ConfigError, match="say which one"):
        run.infer(x)
    with pytest.raises(ConfigError, match="not trained on dataset 'dataset003'"):
        run.infer(x, dataset="dataset003")
    with pytest.raises(
        DataError, match="dataset001 has 20 neurons in the trained model, but the counts have 23"
    ):
        run.infer(x, dataset="dataset001")
    with pytest.raises(DataError, match="have 49 time bins; the model takes 50 bins of 10 ms"):
        run.infer(x[:, :49], dataset="dataset002")
    with pytest.raises(DataError, match="must not be negative"):
        run.infer(-x, dataset="dataset002")
    with pytest.raises(DataError, match="takes no external inputs"):
        run.infer(x, dataset="dataset002", ext_inputs=np.zeros((*x.shape[:2], 1)))
    with pytest.raises(ConfigError, match="kind must be one of"):
        run.infer(x, dataset="dataset002", kind="prior_sample")
    # No weights at all: one error naming where it looked.
    for f in run.path_lfads_output.iterdir():
        if f.name.startswith(("checkpoint", "lfads_vae", "model_params")):
            f.unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(CheckpointError, match="no trained weights.*model_params"):
            run.infer(x, dataset="dataset002")


def test_infer_external_inputs_are_required_and_rebinned(tmp_path, tf_fixtures):
    run = _tf_run(tmp_path, tf_fixtures, "extin1")
    inp = read_lfads_input(run.input_files["dataset001"])
    x, ext = inp.valid_data[:4], inp.valid_ext_input[:4]
    with pytest.raises(DataError, match="takes 1 external inputs: pass ext_inputs"):
        run.infer(x)
    with pytest.raises(DataError, match=r"expected \(4, 50, 1\), got \(4, 50, 2\)"):
        run.infer(x, ext_inputs=np.zeros((4, 50, 2)))
    ref = run.infer(x, ext_inputs=ext)
    # at 5 ms bins: each count and each input pulse in the first half of its 10 ms bin
    fine_x = np.zeros((4, 100, x.shape[2]), np.int64)
    fine_x[:, ::2] = x
    fine_e = np.zeros((4, 100, 1))
    fine_e[:, ::2] = ext
    pm = run.infer(fine_x, ext_inputs=fine_e, bin_ms=5)
    np.testing.assert_allclose(pm.factors, ref.factors, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(pm.binned_external_inputs, ext)
