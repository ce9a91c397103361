"""Tests of the synthetic Lorenz datasets (lfads_runs.data.synthetic)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from conftest import manifest, true_rates

from lfads_runs.data.synthetic import lorenz, lorenz_trajectories, write_lorenz_datasets
from lfads_runs.exceptions import ConfigError
from lfads_runs.io.lfads_input import read_lfads_input


def _all_trials(inp):
    """Rebuild the original trial order of an input file from train_inds/valid_inds."""
    n = inp.train_data.shape[0] + inp.valid_data.shape[0]
    out = np.empty((n, *inp.train_data.shape[1:]), inp.train_data.dtype)
    out[inp.train_inds.astype(int) - 1] = inp.train_data
    out[inp.valid_inds.astype(int) - 1] = inp.valid_data
    return out


def test_reproduces_stitch_fixture(tf_fixtures):
    """With the fixture's seed and sizes, latents, read-outs, rates and counts match stitch2."""
    check_reproduces_stitch_case(tf_fixtures / "stitch2", manifest("stitch2")["synthetic_data"])


def check_reproduces_stitch_case(case, data: dict) -> None:
    """``data``: seed, n_conditions, datasets (repeats_per_condition, neurons), T, bin_ms, rate."""
    d = lorenz(
        n_datasets=len(data["datasets"]),
        n_conditions=data["n_conditions"],
        trials_per_condition=[ds["repeats_per_condition"] for ds in data["datasets"]],
        n_neurons=[ds["neurons"] for ds in data["datasets"]],
        duration_ms=data["T"] * data["bin_ms"],
        bin_ms=data["bin_ms"],
        mean_rate_hz=data["mean_rate_hz"],
        seed=data["seed"],
    )
    with h5py.File(case / "truth.h5", "r") as f:
        np.testing.assert_allclose(
            d.condition_latents, f["condition_latents"][()], rtol=0, atol=1e-12
        )
        for ds in d.datasets:
            g = f[ds.name]
            np.testing.assert_allclose(ds.readout_W, g["readout_W"][()], rtol=0, atol=0)
            np.testing.assert_allclose(ds.readout_b, g["readout_b"][()], rtol=0, atol=0)
            np.testing.assert_allclose(ds.true_rates, true_rates(case, ds.name), rtol=1e-12)
            np.testing.assert_allclose(ds.latents, g["latents"][()], rtol=0, atol=1e-12)
            np.testing.assert_array_equal(ds.condition_id, g["condition_id"][()])
            counts = _all_trials(read_lfads_input(case / "lfadsInput" / f"lfads_{ds.name}.h5"))
            np.testing.assert_array_equal(ds.counts, counts)


def test_lorenz_equations_include_minus_y():
    """One Euler step follows dy/dt = x(rho - z) - y (not the MATLAB demo's x(rho - z))."""
    x0 = np.array([[1.0, 2.0, 3.0]])
    out = lorenz_trajectories(x0, 2, burn_in_steps=0, dt=0.01)
    np.testing.assert_allclose(out[0, 0], x0[0])
    expected = x0[0] + 0.01 * np.array([10 * (2 - 1), 1 * (28 - 3) - 2, 1 * 2 - 8 / 3 * 3])
    np.testing.assert_allclose(out[0, 1], expected)


def test_shapes_seeding_and_normalisation():
    """Shapes follow the arguments; the same seed gives the same data; latents lie in [-1, 1]."""
    kw = dict(
        n_datasets=2,
        n_conditions=4,
        trials_per_condition=[3, 2],
        n_neurons=7,
        duration_ms=60,
        bin_ms=2,
        mean_rate_hz=10.0,
        seed=3,
    )
    a, b = lorenz(**kw), lorenz(**kw)
    ds = a.datasets[1]
    assert [x.name for x in a.datasets] == ["dataset001", "dataset002"]
    assert ds.counts.shape == (8, 30, 7) and ds.counts.dtype == np.int64
    assert ds.condition_id.tolist() == [1, 1, 2, 2, 3, 3, 4, 4]
    np.testing.assert_array_equal(ds.time_ms, np.arange(30) * 2.0)
    np.testing.assert_array_equal(a.datasets[0].counts, b.datasets[0].counts)
    assert np.abs(a.condition_latents).max() <= 1.0 + 1e-12
    np.testing.assert_allclose(ds.readout_b, np.log(10.0 * 2 / 1000))
    assert np.all(np.abs(ds.readout_W) >= 1) and np.all(np.abs(ds.readout_W) < 2)
    c = lorenz(**{**kw, "seed": 4})
    assert not np.array_equal(a.datasets[0].counts, c.datasets[0].counts)
    binary = lorenz(**{**kw, "binarize": True, "mean_rate_hz": 400.0})
    assert set(np.unique(binary.datasets[0].counts)) <= {0, 1}
    dd = ds.to_dataset_data()
    assert dd.bin_ms == 2.0 and dd.n_trials == 8 and dd.true_rates is not None


def test_bad_arguments():
    """Inconsistent sizes raise ConfigError."""
    with pytest.raises(ConfigError, match="multiple of bin_ms"):
        lorenz(duration_ms=15, bin_ms=2)
    with pytest.raises(ConfigError, match="3 values given for 2 datasets"):
        lorenz(n_datasets=2, n_neurons=[1, 2, 3])


def test_write_lorenz_datasets(tmp_path):
    """Files hold the loaders' default keys and round-trip the arrays."""
    d = lorenz(
        n_datasets=2,
        n_conditions=3,
        trials_per_condition=2,
        n_neurons=[4, 5],
        duration_ms=20,
        bin_ms=1,
        seed=1,
    )
    paths = write_lorenz_datasets(d, tmp_path / "data")
    assert sorted(paths) == ["dataset001", "dataset002"]
    with h5py.File(paths["dataset002"], "r") as f:
        np.testing.assert_array_equal(f["counts"][()], d.datasets[1].counts)
        np.testing.assert_array_equal(f["condition_id"][()], d.datasets[1].condition_id)
        assert f["bin_ms"][()] == 1.0 and f["time_ms"].shape == (20,)
        assert f["true_rates"].shape == (6, 20, 5)


def test_written_files_load_with_default_keys(tmp_path):
    """write_lorenz_datasets output loads back through load_dataset without key mapping."""
    from lfads_runs.data.loaders import load_dataset

    d = lorenz(
        n_datasets=1,
        n_conditions=2,
        trials_per_condition=2,
        n_neurons=3,
        duration_ms=10,
        bin_ms=2,
        seed=5,
    )
    loaded = load_dataset(write_lorenz_datasets(d, tmp_path)["dataset001"])
    np.testing.assert_array_equal(loaded.counts, d.datasets[0].counts)
    np.testing.assert_array_equal(loaded.true_rates, d.datasets[0].true_rates)
    assert loaded.bin_ms == 2.0 and loaded.condition_id.tolist() == [1, 1, 2, 2]
