"""Headless (Agg) PNG tests of lfads_runs.plots.results on the TensorFlow reference outputs."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from conftest import manifest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from lfads_runs.exceptions import DataError  # noqa: E402
from lfads_runs.io.lfads_input import read_lfads_input  # noqa: E402
from lfads_runs.plots.grid import grid_axes, grid_shape  # noqa: E402
from lfads_runs.plots.results import (  # noqa: E402
    plot_factors_by_condition,
    plot_rates_vs_truth,
    plot_stitching_pca,
    plot_training_curves,
    save_figure,
)
from lfads_runs.results.analysis import shared_pca  # noqa: E402
from lfads_runs.results.fitlog import read_fit_log  # noqa: E402
from lfads_runs.results.posterior_means import read_posterior_means  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _stitch_pm(root, ds, kind="posterior_push_mean"):
    case = root / "stitch2"
    with h5py.File(case / "truth.h5", "r") as f:
        cond = f[ds]["condition_id"][()]
    out = case / "lfadsOutput"
    return read_posterior_means(
        out / f"model_runs_{ds}.h5_train_{kind}", out / f"model_runs_{ds}.h5_valid_{kind}",
        dataset=ds, kind=kind, spike_bin_ms=10, condition_ids=cond,
        lfads_input=read_lfads_input(case / "lfadsInput" / f"lfads_{ds}.h5"),
    )  # fmt: skip


def _check_png(fig, path):
    save_figure(fig, path)
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []


def test_factor_traces_per_condition(tf_fixtures, tmp_path):
    """One panel per factor with thin single trials and a thick mean per condition."""
    pm = _stitch_pm(tf_fixtures, "dataset001")
    fig = plot_factors_by_condition(
        pm.factors, pm.condition_ids, time_ms=pm.time_ms, max_conditions=3,
        max_trials_per_condition=1,
    )  # fmt: skip
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 6
    assert (pm.condition_ids == 1).sum() > 1  # so that the cap of 1 trial applies
    assert len(axes[0].lines) == 3 * (1 + 1)  # 1 trial + 1 mean per condition
    means = [ln for ln in axes[0].lines if ln.get_linewidth() == 2.0]
    np.testing.assert_allclose(
        means[0].get_ydata(), pm.factors[pm.condition_ids == 1, :, 0].mean(axis=0)
    )
    assert axes[0].get_xlabel() == "time (ms)"
    _check_png(fig, tmp_path / "factors.png")
    with pytest.raises(DataError, match="condition_ids"):
        plot_factors_by_condition(pm.factors, pm.condition_ids[:5])


def test_stitching_pca_all_datasets_in_one_space(tf_fixtures, tmp_path):
    """Both stitched datasets' condition averages are projected on PCs fitted to all of them."""
    avgs = {ds: _stitch_pm(tf_fixtures, ds).condition_averaged("factors")[1]
            for ds in ("dataset001", "dataset002")}  # fmt: skip
    pca = shared_pca(avgs)
    both = np.concatenate([a.reshape(-1, 6) for a in avgs.values()])
    centred = both - both.mean(axis=0)
    top = np.linalg.eigh(np.cov(centred.T))[1][:, ::-1][:, :2]
    np.testing.assert_allclose(np.abs(pca.components @ top), np.eye(2), atol=1e-6)
    assert 0.5 < pca.explained_variance_ratio.sum() <= 1.0
    # the two datasets share the latent space: their trajectories nearly coincide
    p1, p2 = pca.projections["dataset001"], pca.projections["dataset002"]
    assert np.abs(p1 - p2).mean() < 0.5 * np.abs(p1).mean()
    fig, ax = plt.subplots()
    assert plot_stitching_pca(avgs, ax=ax) is fig
    n_cond = manifest("stitch2")["synthetic_data"]["n_conditions"]
    assert len(ax.lines) == 2 * n_cond and len(ax.collections) == 2  # trajectories, IC dots
    np.testing.assert_allclose(ax.collections[1].get_offsets(), p2[:, 0, :])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["dataset001", "dataset002"]
    _check_png(fig, tmp_path / "stitching.png")
    with pytest.raises(DataError, match="same number of factors"):
        shared_pca({"a": np.zeros((2, 5, 3)), "b": np.zeros((2, 5, 4))})


def test_rates_vs_truth(tf_fixtures, tmp_path):
    """Inferred and true rates of a few neurons, in the same units, with their correlation."""
    pm = _stitch_pm(tf_fixtures, "dataset002")
    fig = plot_rates_vs_truth(pm.rates, pm.truth, time_ms=pm.time_ms, neurons=[0, 5, 9])
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 3 and len(axes[1].lines) == 2 * 3
    np.testing.assert_array_equal(axes[1].lines[1].get_ydata(), pm.truth[0, :, 5])
    np.testing.assert_array_equal(axes[1].lines[4].get_ydata(), pm.rates[-1, :, 5])
    assert axes[0].get_ylabel() == "expected counts per bin"
    assert "r = " in axes[0].get_title()
    _check_png(fig, tmp_path / "rates.png")
    with pytest.raises(DataError, match="must both be"):
        plot_rates_vs_truth(pm.rates, pm.truth[..., :3])


def test_training_curves(tf_fixtures, tmp_path):
    """Costs by split vs step, weights on a twin axis and the LVE step marked."""
    log = read_fit_log(tf_fixtures / "ctrl1" / "lfadsOutput" / "fitlog.csv")
    fig = plot_training_curves(log)
    top = fig.axes[0]
    labels = [ln.get_label() for ln in top.lines]
    assert {"total train", "total valid", "recon train", "recon valid"} <= set(labels)
    assert f"lowest valid (step {manifest('ctrl1')['lve_step']})" in labels
    twin = fig.axes[2]
    np.testing.assert_array_equal(twin.lines[0].get_ydata(), log.kl_weight)
    _check_png(fig, tmp_path / "training.png")


@pytest.mark.parametrize(
    ("n", "max_cols", "shape"), [(1, 4, (1, 1)), (4, 4, (1, 4)), (5, 4, (2, 4)), (9, 3, (3, 3))]
)
def test_grid_shape_and_axes(n, max_cols, shape):
    assert grid_shape(n, max_cols) == shape
    fig = matplotlib.figure.Figure()
    axes = grid_axes(fig, n, max_cols)
    assert len(axes) == n and all(ax.get_visible() for ax in axes)
    hidden = [ax for ax in fig.axes if not ax.get_visible()]
    assert len(fig.axes) == shape[0] * shape[1] and len(hidden) == shape[0] * shape[1] - n


def test_grid_of_nothing_is_one_error():
    with pytest.raises(DataError, match="nothing to draw: 0 panels"):
        grid_shape(0)
    with pytest.raises(DataError, match="nothing to draw"):
        plot_rates_vs_truth(np.ones((2, 3, 4)), np.ones((2, 3, 4)), neurons=[])
