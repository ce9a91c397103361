"""The engine against the original TensorFlow LFADS (tests/conftest.py ``tf_fixtures``).

For each reference case: the variable set our model builds equals the
fixture's ``model_params`` keys, and with the fixture's weights and input
files our ``posterior_push_mean`` reproduces TensorFlow's outputs to float32
round-off.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import TF_CASES, lve_checkpoint, manifest

torch = pytest.importorskip("torch")

from lfads_runs.engine import load_model, sample_posterior  # noqa: E402
from lfads_runs.engine.ckpt import checkpoint_tensors  # noqa: E402
from lfads_runs.engine.data import build_spec, load_datasets  # noqa: E402
from lfads_runs.engine.model import LfadsModel  # noqa: E402
from lfads_runs.io.hyperparameters_file import read_hyperparameters  # noqa: E402
from lfads_runs.io.model_params import read_model_params  # noqa: E402
from lfads_runs.io.posterior_files import read_posterior_file  # noqa: E402
from lfads_runs.model_spec import hdf5_key  # noqa: E402

EXACT_KEYS = (
    "factors", "gen_states", "gen_ics", "post_g0_mean", "post_g0_logvar",
    "prior_g0_mean", "prior_g0_logvar", "controller_outputs", "train_steps",
)  # fmt: skip


def _case(tf_fixtures: Path, case: str):
    out = tf_fixtures / case / "lfadsOutput"
    hp = next(
        p for p in sorted(out.glob("hyperparameters-*.txt")) if p.name != "hyperparameters-0.txt"
    )
    hps = read_hyperparameters(hp)
    datasets = load_datasets(tf_fixtures / case / "lfadsInput", hps)
    return out, hps, datasets, build_spec(hps, datasets)


@pytest.mark.parametrize("case", TF_CASES)
def test_variable_set_matches_model_params(tf_fixtures, case):
    out, hps, datasets, spec = _case(tf_fixtures, case)
    fixture = read_model_params(out / "model_params")
    model = LfadsModel(spec)
    # Every variable, shaped like TensorFlow's.
    ours = {hdf5_key(n): tuple(p.shape) for n, p in model.params.by_tf_name().items()}
    theirs = {k: v.shape for k, v in fixture.items() if "Adam" not in k}
    for scalar in ("global_step", "learning_rate", "beta1_power", "beta2_power"):
        theirs.pop(f"LFADS_{scalar}:0")
    assert ours == theirs
    # A training checkpoint of ours holds exactly the fixture's tensors (slots and scalars too).
    slots = {n: (p.detach().numpy(),) * 2 for n, p in model.params.updated().items()}
    tensors = checkpoint_tensors(
        model.params.to_arrays(),
        slots,
        step=1,
        learning_rate=0.01,
        beta1_power=0.9,
        beta2_power=0.999,
    )
    assert {hdf5_key(n): a.shape for n, a in tensors.items()} == {
        k: v.shape for k, v in fixture.items()
    }
    # Non-trainable variables get no gradient.
    frozen = {n for n, p in model.params.by_tf_name().items() if not p.requires_grad}
    assert ("LFADS/z/prior_g0/logvar" in frozen) == (hps.ic_prior_var_max == hps.ic_prior_var_min)


@pytest.mark.parametrize("case", TF_CASES)
def test_push_mean_matches_tensorflow(tf_fixtures, case):
    out, hps, datasets, spec = _case(tf_fixtures, case)
    model = load_model(out / "model_params", spec)
    from lfads_runs.engine import infer

    for name, ds in datasets.items():
        for split in ("train", "valid"):
            ref = read_posterior_file(out / f"model_runs_{name}_{split}_posterior_push_mean")
            got = infer(
                model,
                spec,
                ds.data(split),
                dataset=name,
                ext_input=ds.ext(split),
                kind="posterior_push_mean",
                seed=0,
            )
            assert set(got) == set(ref)
            for key in EXACT_KEYS:
                if key in ref:
                    np.testing.assert_allclose(
                        got[key],
                        ref[key],
                        rtol=0,
                        atol=1e-5,
                        err_msg=f"{case} {name} {split} {key}",
                    )
            # Rates (or Gaussian variances) reach ~150: compare to float32 round-off.
            np.testing.assert_allclose(
                got["output_dist_params"], ref["output_dist_params"], rtol=1e-5, atol=1e-5
            )
            if hps.co_dim == 0:  # no sampled KL: the batch costs are deterministic too
                for key in ("costs", "nll_bound_vaes", "nll_bound_iwaes"):
                    np.testing.assert_allclose(got[key], ref[key], rtol=2e-6)


def test_checkpoint_and_model_params_give_the_same_weights(tf_fixtures):
    out, hps, datasets, spec = _case(tf_fixtures, "ctrl1")
    a = load_model(out / "model_params", spec)
    b = load_model(lve_checkpoint("ctrl1"), spec)
    c = load_model(out, spec)  # an output folder: its LVE checkpoint
    assert a.global_step == b.global_step == c.global_step == manifest("ctrl1")["lve_step"]
    for n, p in a.params.by_tf_name().items():
        assert torch.equal(p, b.params[n]) and torch.equal(p, c.params[n])


def test_sample_posterior_writes_tensorflow_files(tf_fixtures, tmp_path):
    """Files written by sample_posterior from a TF checkpoint: same keys, exact push-mean values,
    sample-and-average statistically like TensorFlow's."""
    case = "extin1"
    src = tf_fixtures / case / "lfadsOutput"
    save = tmp_path / "lfadsOutput"
    save.mkdir()
    for f in src.iterdir():
        if f.name.startswith(("checkpoint", f"{lve_checkpoint(case).name}.", "hyperparameters-0")):
            shutil.copy(f, save / f.name)
    _, hps, _, _ = _case(tf_fixtures, case)
    data_dir = tf_fixtures / case / "lfadsInput"
    files = sample_posterior(data_dir, save, hps, "posterior_push_mean", "lve", seed=1)
    files.update(
        sample_posterior(data_dir, save, hps, "posterior_sample_and_average", "lve", seed=1)
    )
    assert len(files) == 4
    assert (save / f"hyperparameters-{manifest(case)['lve_step']}.txt").is_file()
    # the case keeps TF's files of both splits but the train-split sample-and-average one
    kept = {f.removeprefix("lfadsOutput/") for f in manifest(case)["files"]}
    assert len(kept & set(files)) == 3
    for fname, path in files.items():
        got = read_posterior_file(path)
        if fname not in kept:  # same keys as TensorFlow's valid-split file of that kind
            valid = fname.replace("_train_", "_valid_")
            assert set(got) == set(read_posterior_file(src / valid))
            continue
        ref = read_posterior_file(src / fname)
        assert set(got) == set(ref)
        with h5py.File(path) as f:
            assert all(f[k].dtype == np.float64 and f[k].compression == "gzip" for k in f)
        if fname.endswith("push_mean"):
            np.testing.assert_allclose(got["factors"], ref["factors"], atol=1e-5)
        else:
            # Averages of 16 samples: close to TensorFlow's averages on the whole, not equal.
            d = np.abs(got["factors"] - ref["factors"]).mean()
            spread = np.abs(ref["factors"] - ref["factors"].mean(0)).mean()
            assert 0 < d < 0.25 * spread
            assert np.all(got["nll_bound_iwaes"] <= got["nll_bound_vaes"] + 1e-3)


@pytest.fixture
def pure_torch():
    """Run with the native kernels switched off (the path used without a C++ compiler)."""
    from lfads_runs.engine import _ext

    _ext.set_native_enabled(False)
    yield
    _ext.set_native_enabled(None)


@pytest.mark.parametrize("case", ["ctrl1", "stitch2"])
def test_pure_torch_path_matches_tensorflow(tf_fixtures, case, pure_torch):
    out, hps, datasets, spec = _case(tf_fixtures, case)
    model = load_model(out / "model_params", spec)
    from lfads_runs.engine import infer

    name, ds = next(iter(datasets.items()))
    ref = read_posterior_file(out / f"model_runs_{name}_valid_posterior_push_mean")
    got = infer(model, spec, ds.data("valid"), dataset=name, kind="posterior_push_mean", seed=0)
    for key in ("factors", "gen_states", "post_g0_mean"):
        np.testing.assert_allclose(got[key], ref[key], rtol=0, atol=1e-5)
