"""Tests of lfads_runs.results.posterior_means on the TensorFlow reference outputs."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
from conftest import TF_CASES, manifest, n_trials, true_rates

from lfads_runs.exceptions import ConfigError, DataError, MissingOutputError
from lfads_runs.io.lfads_input import read_lfads_input
from lfads_runs.io.posterior_files import read_posterior_file, write_posterior_file
from lfads_runs.results.posterior_means import (
    POSTERIOR_KINDS,
    PosteriorMeans,
    concatenate_over_trials,
    posterior_means_from_arrays,
    read_posterior_means,
)

# (case, dataset, output_dist, n_trials, n_neurons, n_factors, co_dim), from the manifests
CASES = [
    (case, ds["name"], flags["output_dist"], ds["n_trials"], ds["neurons"],
     flags["factors_dim"], flags["co_dim"])
    for case in TF_CASES
    for flags in [manifest(case)["flags"]["train"]]
    for ds in manifest(case)["synthetic_data"]["datasets"]
]  # fmt: skip


def _has_train_file(case, kind):
    """Only stitch2 keeps train-split sample-and-average files (tools/make_tf_reference.py)."""
    return any(f.endswith(f"_train_{kind}") for f in manifest(case)["files"])


def _every(case):
    """Every how many trials one is validation (the input files' split)."""
    return manifest(case)["synthetic_data"]["train_to_test_ratio"] + 1


def _paths(root, case, ds, kind):
    out = root / case / "lfadsOutput"
    return (
        out / f"model_runs_{ds}.h5_train_{kind}",
        out / f"model_runs_{ds}.h5_valid_{kind}",
    )


def _truth(root, case, ds):
    with h5py.File(root / case / "truth.h5", "r") as f:
        return {k: f[ds][k][()] for k in f[ds]}


def _load(root, case, ds, kind, output_dist="poisson", **kw):
    inp = read_lfads_input(root / case / "lfadsInput" / f"lfads_{ds}.h5")
    train, valid = _paths(root, case, ds, kind)
    return read_posterior_means(
        train, valid, dataset=ds, kind=kind, spike_bin_ms=10, lfads_input=inp,
        condition_ids=_truth(root, case, ds)["condition_id"], output_dist=output_dist, **kw,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("case", "ds", "dist", "n", "neurons", "factors", "co", "kind"),
    [(*c, kind) for kind in POSTERIOR_KINDS for c in CASES if _has_train_file(c[0], kind)],
)
def test_fixture_shapes_order_and_units(tf_fixtures, case, ds, dist, n, neurons, factors, co, kind):
    """Every fixture loads with the right shapes, original trial order and explicit units."""
    pm = _load(tf_fixtures, case, ds, kind, dist)
    truth = _truth(tf_fixtures, case, ds)
    assert (pm.n_trials, pm.n_time, pm.n_factors, pm.n_neurons) == (n, 50, factors, neurons)
    assert pm.n_controller_outputs == co and (pm.controller_outputs is None) == (co == 0)
    assert pm.factors.shape == (n, 50, factors) and pm.generator_ics.shape[0] == n
    assert pm.trial_loaded.all() and pm.kind == kind and pm.train_step is not None
    np.testing.assert_array_equal(pm.time_ms, np.arange(50) * 10.0)
    # split and order: rows of each file land at their 1-based original trial positions
    np.testing.assert_array_equal(pm.train_inds, truth["train_inds"].astype(int))
    np.testing.assert_array_equal(pm.valid_inds, truth["valid_inds"].astype(int))
    train_path, valid_path = _paths(tf_fixtures, case, ds, kind)
    for path, inds in ((train_path, pm.train_inds), (valid_path, pm.valid_inds)):
        raw = read_posterior_file(path)
        np.testing.assert_array_equal(pm.factors[inds - 1], raw["factors"])
        np.testing.assert_array_equal(pm.generator_states[inds - 1], raw["gen_states"])
        np.testing.assert_array_equal(pm.post_g0_logvar[inds - 1], raw["post_g0_logvar"])
        np.testing.assert_array_equal(pm.costs[inds - 1], raw["costs"])
        params = raw["output_dist_params"]
        if dist == "poisson":
            np.testing.assert_array_equal(pm.rates[inds - 1], params)
        else:
            np.testing.assert_array_equal(pm.means[inds - 1], params[..., :neurons])
            np.testing.assert_array_equal(pm.variances[inds - 1], params[..., neurons:])
    # the input file's truth, put back in original order, equals truth.h5 (original order)
    np.testing.assert_allclose(pm.truth, true_rates(tf_fixtures / case, ds))
    np.testing.assert_array_equal(pm.condition_ids, truth["condition_id"])
    assert pm.is_valid_trial.sum() == pm.valid_inds.size and pm.is_valid_trial[0]
    if dist == "poisson":
        # rates are expected counts per 10 ms bin: they match the binned counts' scale
        assert pm.counts_to_hz == 100.0
        np.testing.assert_allclose(pm.rates_hz, pm.rates * 100.0)
        ratio = pm.rates.mean() / pm.binned_data.mean()
        assert 0.9 < ratio < 1.1
        assert pm.binned_data.dtype == np.int64


def test_gaussian_fields_have_no_rate_conversion(tf_fixtures):
    """Gaussian output gives means and variances in data units and refuses a spikes/s view."""
    pm = _load(tf_fixtures, "gauss1", "dataset001", "posterior_push_mean", "gaussian")
    n = n_trials("gauss1")["all"]
    assert pm.rates is None and pm.means.shape == pm.variances.shape == (n, 50, 10)
    with pytest.raises(DataError, match="no Poisson rates"):
        _ = pm.rates_hz
    assert (pm.variances > 0).all()
    # the manifest's numbers were computed from the raw files with plain h5py
    quality = manifest("gauss1")["push_mean_quality"]
    v = pm.is_valid_trial
    assert np.median(pm.variances[v]) == pytest.approx(quality["dataset001_median_valid_variance"])
    gain = manifest("gauss1")["synthetic_data"]["variant"]["gain"]
    target = gain * pm.truth[v]  # the Gaussian mean is gain x the true rate
    centred = target - target.mean(axis=(0, 1))  # per-neuron mean
    r2 = 1 - ((pm.means[v] - target) ** 2).sum() / (centred**2).sum()
    assert r2 == pytest.approx(quality["dataset001_valid_r2"], abs=1e-9)


def test_external_inputs_reassembled(tf_fixtures):
    """The input file's external inputs come back in original trial order."""
    pm = _load(tf_fixtures, "extin1", "dataset001", "posterior_push_mean")
    truth = _truth(tf_fixtures, "extin1", "dataset001")
    np.testing.assert_array_equal(pm.binned_external_inputs, truth["ext_input"])


def test_fewer_trials_in_files_give_nan(tf_fixtures, tmp_path):
    """Files holding fewer trials than the split leave NaN trials that averages skip."""
    kind = "posterior_push_mean"
    train, valid = _paths(tf_fixtures, "ctrl1", "dataset001", kind)
    short = {k: v[:10] for k, v in read_posterior_file(valid).items()}
    new_valid = tmp_path / valid.name
    write_posterior_file(new_valid, short)
    inp = read_lfads_input(tf_fixtures / "ctrl1" / "lfadsInput" / "lfads_dataset001.h5")
    cond = _truth(tf_fixtures, "ctrl1", "dataset001")["condition_id"]
    pm = read_posterior_means(
        train, new_valid, dataset="dataset001", kind=kind, spike_bin_ms=10, lfads_input=inp,
        condition_ids=cond,
    )  # fmt: skip
    missing = pm.valid_inds[10:] - 1
    n = n_trials("ctrl1")
    assert n["valid"] > 10
    assert (~pm.trial_loaded).sum() == n["valid"] - 10 and not pm.trial_loaded[missing].any()
    assert np.isnan(pm.factors[missing]).all() and np.isnan(pm.rates[missing]).all()
    assert np.isfinite(pm.factors[pm.valid_inds[:10] - 1]).all()
    conds, avg = pm.condition_averaged("factors")
    assert np.isfinite(avg).all()
    first = pm.condition_ids == conds[0]
    expected = np.nanmean(pm.factors[first], axis=0)
    np.testing.assert_allclose(avg[0], expected)
    assert f"{n['all'] - n['valid'] + 10} loaded" in repr(pm)


def test_condition_averages_rates_hz_and_string_labels(tf_fixtures):
    """Condition averages follow np.unique order, work on rates_hz and on text labels."""
    pm = _load(tf_fixtures, "stitch2", "dataset001", "posterior_push_mean")
    conds, avg = pm.condition_averaged("rates_hz")
    n_cond = manifest("stitch2")["synthetic_data"]["n_conditions"]
    assert conds.tolist() == list(range(1, n_cond + 1)) and avg.shape == (n_cond, 50, 20)
    sel = pm.condition_ids == 5
    np.testing.assert_allclose(avg[4], pm.rates[sel].mean(axis=0) * 100)
    labels = np.array([f"c{int(c):02d}" if c != 3 else "" for c in pm.condition_ids])
    conds, avg = pm.condition_averaged("factors", condition_ids=labels)
    assert conds.tolist() == [f"c{i:02d}" for i in range(1, n_cond + 1) if i != 3]
    with pytest.raises(DataError, match="one per trial"):
        pm.condition_averaged("factors", condition_ids=[1, 2])
    with pytest.raises(DataError, match="unknown"):
        pm.condition_averaged("spikes")


def test_concatenate_over_datasets(tf_fixtures):
    """Stitched datasets concatenate over trials; mismatched neuron fields need drop_mismatched."""
    kind = "posterior_sample_and_average"
    a = _load(tf_fixtures, "stitch2", "dataset001", kind)
    b = _load(tf_fixtures, "stitch2", "dataset002", kind)
    with pytest.raises(DataError, match="'rates'.*drop_mismatched"):
        concatenate_over_trials([a, b])
    both = concatenate_over_trials([a, b], drop_mismatched=True)
    n = n_trials("stitch2")
    assert both.dataset == "dataset001+dataset002" and both.n_trials == 2 * n["all"]
    assert both.rates is None and both.n_neurons is None
    assert both.factors.shape == (2 * n["all"], 50, 6)
    np.testing.assert_array_equal(both.dataset_index_by_trial, np.repeat([0, 1], n["all"]))
    np.testing.assert_array_equal(
        both.factors[both.valid_inds - 1][n["valid"] :], b.factors[b.valid_inds - 1]
    )
    conds, avg = both.condition_averaged("factors")
    np.testing.assert_allclose(avg[0], both.factors[both.condition_ids == 1].mean(axis=0))
    # the same dataset twice keeps every field
    twice = concatenate_over_trials([a, a])
    assert twice.dataset_names == ("dataset001",) and twice.rates.shape == (2 * n["all"], 50, 20)
    push = _load(tf_fixtures, "stitch2", "dataset002", "posterior_push_mean")
    with pytest.raises(DataError, match="kind differs"):
        concatenate_over_trials([a, push], drop_mismatched=True)


def test_legacy_name_and_missing_files(tf_fixtures, tmp_path):
    """A missing file falls back to the legacy *_posterior_sample name, else lists what was tried."""
    kind = "posterior_sample_and_average"
    train, valid = _paths(tf_fixtures, "stitch2", "dataset001", kind)
    legacy_train = tmp_path / "model_runs_dataset001.h5_train_posterior_sample"
    shutil.copy(train, legacy_train)
    shutil.copy(valid, tmp_path / valid.name)
    inp = read_lfads_input(tf_fixtures / "stitch2" / "lfadsInput" / "lfads_dataset001.h5")
    kw = dict(dataset="dataset001", kind=kind, spike_bin_ms=10, lfads_input=inp)
    pm = read_posterior_means(tmp_path / train.name, tmp_path / valid.name, **kw)
    assert pm.source_files == (legacy_train, tmp_path / valid.name)
    legacy_train.unlink()
    with pytest.raises(MissingOutputError) as info:
        read_posterior_means(tmp_path / train.name, tmp_path / valid.name, **kw)
    assert train.name in str(info.value) and legacy_train.name in str(info.value)
    with pytest.raises(ConfigError, match="kind"):
        read_posterior_means(train, valid, **{**kw, "kind": "prior_sample"})


def test_inconsistent_files_raise(tf_fixtures, tmp_path):
    """Keys missing from the valid file, mixed checkpoints and oversize files are DataErrors."""
    kind = "posterior_push_mean"
    train, valid = _paths(tf_fixtures, "ctrl1", "dataset001", kind)
    tr, va = read_posterior_file(train), read_posterior_file(valid)
    n, every = n_trials("ctrl1"), _every("ctrl1")
    kw = dict(
        dataset="dataset001", kind=kind, spike_bin_ms=10,
        train_inds=np.arange(1, n["all"] + 1)[np.arange(n["all"]) % every != 0],
        valid_inds=np.arange(1, n["all"] + 1, every),
    )  # fmt: skip
    pm = posterior_means_from_arrays(tr, va, **kw)
    assert pm.binned_data is None and pm.truth is None and pm.condition_ids is None
    no_co = {k: v for k, v in va.items() if k != "controller_outputs"}
    with pytest.raises(DataError, match="controller_outputs"):
        posterior_means_from_arrays(tr, no_co, **kw)
    with pytest.raises(DataError, match="different checkpoints"):
        posterior_means_from_arrays(tr, {**va, "train_steps": va["train_steps"] + 8}, **kw)
    last = kw["valid_inds"][-1]
    moved = {"train_inds": np.append(kw["train_inds"], last), "valid_inds": kw["valid_inds"][:-1]}
    with pytest.raises(DataError, match=f"valid file holds {n['valid']}"):
        posterior_means_from_arrays(tr, va, **{**kw, **moved})
    with pytest.raises(DataError, match="permutation"):
        posterior_means_from_arrays(tr, va, **{**kw, "valid_inds": kw["valid_inds"] * 0 + 1})
    with pytest.raises(DataError, match="train_inds and valid_inds are needed"):
        posterior_means_from_arrays(tr, va, dataset="d", kind=kind, spike_bin_ms=10)
    with pytest.raises(DataError, match="2 x neurons"):
        posterior_means_from_arrays(
            {**tr, "output_dist_params": tr["output_dist_params"][..., :21]},
            {**va, "output_dist_params": va["output_dist_params"][..., :21]},
            output_dist="gaussian", **kw,
        )  # fmt: skip


def test_new_data_without_validation_part_and_time_vector(tf_fixtures):
    """Arrays of new trials (no valid part) build a PosteriorMeans; the time vector is rebinned."""
    kind = "posterior_push_mean"
    train, _ = _paths(tf_fixtures, "stitch2", "dataset001", kind)
    arrays = read_posterior_file(train)
    n_train = n_trials("stitch2")["train"]
    seq_time = np.arange(-200.0, 300.0, 2.0)  # 2 ms sequence bins, 250 of them
    pm = posterior_means_from_arrays(
        arrays, None, dataset="dataset001", kind=kind, spike_bin_ms=10,
        train_inds=np.arange(1, n_train + 1), valid_inds=[], seq_time_ms=seq_time,
    )  # fmt: skip
    assert pm.n_trials == n_train and pm.valid_inds.size == 0
    np.testing.assert_array_equal(pm.time_ms, np.arange(50) * 10.0 - 200.0)
    with pytest.raises(DataError, match="integer multiple"):
        posterior_means_from_arrays(
            arrays, None, dataset="dataset001", kind=kind, spike_bin_ms=10,
            train_inds=np.arange(1, n_train + 1), valid_inds=[], seq_time_ms=np.arange(0, 150, 3.0),
        )  # fmt: skip
    with pytest.raises(DataError, match="gives 25 output bins"):
        posterior_means_from_arrays(
            arrays, None, dataset="dataset001", kind=kind, spike_bin_ms=10,
            train_inds=np.arange(1, n_train + 1), valid_inds=[], seq_time_ms=np.arange(0, 250, 2.0),
        )  # fmt: skip
    assert isinstance(pm, PosteriorMeans) and pm.metadata()["n_neurons"] == 20
    empty = posterior_means_from_arrays(
        arrays, None, dataset="d", kind=kind, spike_bin_ms=10, train_inds=np.arange(1, n_train + 1),
        valid_inds=[], seq_time_ms=np.zeros(0), seq_bin_ms=1.0,
    )  # fmt: skip
    np.testing.assert_array_equal(empty.time_ms, np.arange(50) * 10.0)


def test_input_info_supplies_split_conditions_time_and_counts(tf_fixtures):
    """An InputInfo record gives the split, conditions, original-resolution time and raw counts."""
    from lfads_runs.io.input_info import InputInfo

    truth = _truth(tf_fixtures, "stitch2", "dataset002")
    n = n_trials("stitch2", "dataset002")["all"]
    raw = np.arange(n * 500 * 23, dtype=np.int64).reshape(n, 500, 23) % 3
    info = InputInfo(
        train_inds=truth["train_inds"], valid_inds=truth["valid_inds"], data_hash="abcdef",
        time_ms=np.arange(500) + 0.5, bin_ms=1.0, condition_id=truth["condition_id"],
        counts=raw,
    )  # fmt: skip
    train, valid = _paths(tf_fixtures, "stitch2", "dataset002", "posterior_push_mean")
    pm = read_posterior_means(
        train, valid, dataset="dataset002", kind="posterior_push_mean", spike_bin_ms=10,
        input_info=info,
    )  # fmt: skip
    np.testing.assert_array_equal(pm.time_ms, np.arange(50) * 10 + 0.5)
    np.testing.assert_array_equal(pm.condition_ids, truth["condition_id"])
    valid_inds = list(range(1, n + 1, _every("stitch2")))
    assert pm.raw_counts is raw and pm.valid_inds.tolist() == valid_inds
    # explicit arguments win over the record
    pm = read_posterior_means(
        train, valid, dataset="dataset002", kind="posterior_push_mean", spike_bin_ms=10,
        input_info=info, condition_ids=np.zeros(n),
    )  # fmt: skip
    assert (pm.condition_ids == 0).all()


def test_candidate_lists_are_tried_in_order(tf_fixtures, tmp_path):
    """A list of candidate paths is tried in order, and all are named when none exists."""
    kind = "posterior_push_mean"
    train, valid = _paths(tf_fixtures, "ctrl1", "dataset001", kind)
    inp = read_lfads_input(tf_fixtures / "ctrl1" / "lfadsInput" / "lfads_dataset001.h5")
    kw = dict(dataset="dataset001", kind=kind, spike_bin_ms=10, lfads_input=inp)
    pm = read_posterior_means([tmp_path / "a", train], [valid], **kw)
    assert pm.source_files == (train, valid)
    with pytest.raises(MissingOutputError, match=r"a, .*b"):
        read_posterior_means([tmp_path / "a", tmp_path / "b"], valid, **kw)
