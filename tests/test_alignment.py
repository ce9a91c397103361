"""Tests of the stitching alignment matrices (lfads_runs.data.alignment) and their plot."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from lfads_runs.data.alignment import RIDGE_LAMBDAS, compute_alignment, ridge_cv, uses_alignment
from lfads_runs.data.dataset import DatasetData
from lfads_runs.exceptions import ConfigError, DataError
from lfads_runs.io.lfads_input import read_lfads_input


def _hand_datasets(rng, n_neurons=(4, 5), n_cond=5, reps=3, T=6, conds=None):
    """Counts with condition structure, trials in shuffled order."""
    out = []
    for i, n in enumerate(n_neurons):
        ids = np.repeat(np.arange(1, n_cond + 1) if conds is None else conds[i], reps)
        ids = rng.permutation(ids)
        lam = np.exp(rng.normal(size=(n_cond + 1, T, n)))
        counts = rng.poisson(lam[ids]).astype(np.int64)
        out.append((f"ds{i + 1}", DatasetData(counts, bin_ms=10, condition_id=ids)))
    return out


def _direct(datasets, F):
    """Textbook computation with explicit loops: averages, PCA by eigh, lstsq by normal equations."""
    conds = np.unique(np.concatenate([d.condition_id for _, d in datasets]))
    T = datasets[0][1].n_time
    rows = []
    for _, d in datasets:
        for n in range(d.n_neurons):
            row = []
            for c in conds:
                sel = d.condition_id == c
                row.extend(d.counts[sel, :, n].mean(axis=0) if sel.any() else [np.nan] * T)
            rows.append(row)
    X = np.array(rows)
    mu = np.nanmean(X, axis=1)
    Xc = X - mu[:, None]
    C = np.cov(Xc)
    w, v = np.linalg.eigh(C)
    k = min(F, X.shape[0])
    V = v[:, np.argsort(w)[::-1][:k]]
    for j in range(k):
        if V[np.argmax(np.abs(V[:, j])), j] < 0:
            V[:, j] *= -1
    S = V.T @ Xc
    mats, start = {}, 0
    for name, d in datasets:
        Xd = Xc[start : start + d.n_neurons]
        A = (Xd - Xd.mean(1, keepdims=True)).T
        B = (S - S.mean(1, keepdims=True)).T
        W = np.linalg.solve(A.T @ A, A.T @ B)
        mats[name] = np.hstack([W, np.zeros((W.shape[0], F - k))])
        start += d.n_neurons
    return mats, V, mu, S


def test_reproduces_stitch_fixture(tf_fixtures):
    """On stitch2's counts, our matrices and biases equal the fixture's input files.

    The case's matrices were computed by tools/make_tf_reference.py with its own
    numpy code (SVD and lstsq), not with compute_alignment.
    """
    check_alignment_reproduces_case(tf_fixtures / "stitch2")


def check_alignment_reproduces_case(case) -> None:
    """compute_alignment on a two-dataset case's counts equals its input files' matrices."""
    datasets, inputs = [], {}
    for name in ("dataset001", "dataset002"):
        inp = read_lfads_input(case / "lfadsInput" / f"lfads_{name}.h5")
        inputs[name] = inp
        n = inp.train_data.shape[0] + inp.valid_data.shape[0]
        counts = np.empty((n, *inp.train_data.shape[1:]), np.int64)
        counts[inp.train_inds.astype(int) - 1] = inp.train_data
        counts[inp.valid_inds.astype(int) - 1] = inp.valid_data
        with h5py.File(case / "truth.h5", "r") as f:
            cid = f[name]["condition_id"][()]
        datasets.append((name, DatasetData(counts, bin_ms=10, condition_id=cid)))
    res = compute_alignment(datasets, factors_dim=6)
    for name, inp in inputs.items():
        np.testing.assert_allclose(res.matrices[name], inp.alignment_matrix_cxf, rtol=0, atol=1e-12)
        np.testing.assert_allclose(res.biases[name], inp.alignment_bias_c, rtol=0, atol=1e-12)
    with h5py.File(case / "truth.h5", "r") as f:
        n_cond = f["condition_latents"].shape[0]
    assert res.global_pcs.shape == (6, 50, n_cond)
    assert res.reconstructions["dataset002"].shape == (6, 50, n_cond)


def test_matches_direct_numpy_computation():
    """Least squares on hand-made data equals an explicit loop-and-eigh computation."""
    rng = np.random.default_rng(0)
    datasets = _hand_datasets(rng)
    res = compute_alignment(datasets, factors_dim=3)
    mats, V, mu, S = _direct(datasets, 3)
    np.testing.assert_allclose(res.loadings, V, atol=1e-10)
    for name, _ in datasets:
        np.testing.assert_allclose(res.matrices[name], mats[name], atol=1e-9)
    np.testing.assert_allclose(np.concatenate([res.biases["ds1"], res.biases["ds2"]]), mu)
    np.testing.assert_allclose(res.global_pcs, S.reshape(3, 5, 6).transpose(0, 2, 1), atol=1e-10)
    # reconstruction = W^T x centred averages of the dataset
    np.testing.assert_allclose(
        res.reconstructions["ds1"][:, :, 2],
        res.matrices["ds1"].T
        @ (
            np.stack(
                [
                    datasets[0][1].counts[datasets[0][1].condition_id == 3, :, n].mean(0)
                    for n in range(4)
                ]
            )
            - mu[:4, None]
        ),
        atol=1e-10,
    )


def test_zero_padding_and_single_dataset():
    """Fewer neurons than factors pads with zero columns, for several datasets and for one."""
    rng = np.random.default_rng(1)
    datasets = _hand_datasets(rng, n_neurons=(2, 3))
    res = compute_alignment(datasets, factors_dim=8)
    assert res.n_components == 5 and res.matrices["ds1"].shape == (2, 8)
    assert np.all(res.matrices["ds2"][:, 5:] == 0)
    single = compute_alignment(datasets[:1], factors_dim=4)
    mats, V, mu, _ = _direct(datasets[:1], 4)
    assert single.matrices["ds1"].shape == (2, 4)
    np.testing.assert_allclose(single.matrices["ds1"][:, :2], V, atol=1e-10)
    assert np.all(single.matrices["ds1"][:, 2:] == 0)
    np.testing.assert_allclose(single.biases["ds1"], mu)


def test_missing_conditions_nan_aware():
    """A condition missing from one dataset: NaN-aware means; it drops out of every regression."""
    rng = np.random.default_rng(2)
    conds = [np.arange(1, 6), np.array([1, 2, 3, 4, 4])]  # ds2 lacks condition 5
    datasets = _hand_datasets(rng, n_neurons=(4, 5), conds=conds)
    res = compute_alignment(datasets, factors_dim=3)
    assert res.conditions.tolist() == [1, 2, 3, 4, 5]
    d2 = datasets[1][1]
    expected_bias = np.mean(
        [d2.counts[d2.condition_id == c].mean(axis=0) for c in range(1, 5)], axis=(0, 1)
    )
    np.testing.assert_allclose(res.biases["ds2"], expected_bias)
    assert np.isnan(res.global_pcs[:, :, 4]).all() and np.isfinite(res.global_pcs[:, :, :4]).all()
    assert np.isnan(res.reconstructions["ds2"][:, :, 4]).all()
    assert np.isfinite(res.reconstructions["ds1"][:, :, 4]).all()
    # the regression of ds1 uses only conditions 1-4: refit directly on those columns
    X = np.concatenate(
        [
            np.stack([d.counts[d.condition_id == c].mean(0) for c in range(1, 5)])
            .transpose(2, 0, 1)
            .reshape(d.n_neurons, -1)
            for _, d in datasets
        ]
    )
    S = res.loadings.T @ (X - np.concatenate([res.biases["ds1"], res.biases["ds2"]])[:, None])
    A = X[:4] - X[:4].mean(1, keepdims=True)
    B = S - S.mean(1, keepdims=True)
    W = np.linalg.lstsq(A.T, B.T, rcond=None)[0]
    np.testing.assert_allclose(res.matrices["ds1"], W, atol=1e-9)


def test_pairwise_pca_with_missing_conditions():
    """The PCA uses MATLAB's pairwise covariance when conditions are missing."""
    rng = np.random.default_rng(3)
    conds = [np.arange(1, 7), np.array([1, 2, 3, 4, 4, 4])]
    datasets = _hand_datasets(rng, n_neurons=(3, 3), n_cond=6, conds=conds)
    res = compute_alignment(datasets, factors_dim=2)
    X = []
    for _, d in datasets:
        X.append(
            np.stack(
                [
                    d.counts[d.condition_id == c].mean(0)
                    if (d.condition_id == c).any()
                    else np.full((d.n_time, d.n_neurons), np.nan)
                    for c in range(1, 7)
                ]
            )
            .transpose(2, 0, 1)
            .reshape(d.n_neurons, -1)
        )
    X = np.concatenate(X)
    Xc = X - np.nanmean(X, axis=1, keepdims=True)
    C = np.empty((6, 6))
    for i in range(6):
        for j in range(6):
            both = np.isfinite(Xc[i]) & np.isfinite(Xc[j])
            C[i, j] = np.sum(Xc[i, both] * Xc[j, both]) / (both.sum() - 1)
    w, v = np.linalg.eigh(C)
    assert np.all(w > -1e-10 * w.max())  # pairwise covariance is PSD here: no 'complete' fallback
    V = v[:, np.argsort(w)[::-1][:2]]
    V *= np.sign(V[np.argmax(np.abs(V), axis=0), [0, 1]])
    np.testing.assert_allclose(res.loadings, V, atol=1e-10)


def test_string_conditions():
    """String condition ids work like numbers (sorted union)."""
    rng = np.random.default_rng(4)
    datasets = _hand_datasets(rng)
    names = np.array(["a", "b", "c", "d", "e"])
    as_str = [
        (n, DatasetData(d.counts, bin_ms=10, condition_id=names[d.condition_id - 1]))
        for n, d in datasets
    ]
    r1 = compute_alignment(datasets, factors_dim=3)
    r2 = compute_alignment(as_str, factors_dim=3)
    assert r2.conditions.tolist() == ["a", "b", "c", "d", "e"]
    np.testing.assert_allclose(r1.matrices["ds2"], r2.matrices["ds2"])


def test_ridge_cv_is_proper_kfold():
    """ridge_cv picks the penalty a direct K-fold loop picks (fit on K-1 folds), and W is unscaled."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(40, 4)) * 3
    Y = X @ rng.normal(size=(4, 2)) + rng.normal(size=(40, 2)) * 2
    W, _, lam = ridge_cv(Y, X)
    s = X.std(ddof=1)
    Xt = np.hstack([np.ones((40, 1)), X / s])
    P = np.diag([0.0, 1, 1, 1, 1])
    fold = np.arange(1, 41) % 10
    losses = []
    for L in RIDGE_LAMBDAS:
        fl = []
        for f in range(10):
            tr, te = fold != f, fold == f
            b = np.linalg.solve(Xt[tr].T @ Xt[tr] + L * P, Xt[tr].T @ Y[tr])
            fl.append(np.mean((Xt[te] @ b - Y[te]) ** 2))
        losses.append(np.mean(fl))
    assert lam == RIDGE_LAMBDAS[int(np.argmin(losses))]
    b = np.linalg.solve(Xt.T @ Xt + lam * P, Xt.T @ Y)
    np.testing.assert_allclose(W, b[1:] / s)
    W_small, _, _ = ridge_cv(Y, X, lambdas=np.array([1e-12]))
    np.testing.assert_allclose(
        W_small, np.linalg.lstsq(np.hstack([np.ones((40, 1)), X]), Y, rcond=None)[0][1:], atol=1e-8
    )
    W_each, _, _ = ridge_cv(Y, X, normalize_each=True, lambdas=np.array([1e-12]))
    np.testing.assert_allclose(W_each, W_small, atol=1e-8)


def test_ridge_approach_and_extra_args():
    """ridgeRegressGlobalPCs records the chosen penalty; extra args are parsed."""
    rng = np.random.default_rng(6)
    datasets = _hand_datasets(rng)
    res = compute_alignment(
        datasets,
        factors_dim=3,
        approach="ridgeRegressGlobalPCs",
        extra_args=["ridgeNormalizeEach", True],
    )
    assert set(res.ridge_lambdas) == {"ds1", "ds2"} and res.approach == "ridgeRegressGlobalPCs"
    with pytest.raises(ConfigError, match="unknown option 'useFoo'"):
        compute_alignment(datasets, factors_dim=3, extra_args={"useFoo": 1})
    with pytest.raises(ConfigError, match="alignment_approach must be one of"):
        compute_alignment(datasets, factors_dim=3, approach="magic")


def test_alignment_errors():
    """Missing ids, mixed kinds, disjoint conditions and unequal lengths are DataErrors naming datasets."""
    rng = np.random.default_rng(7)
    a, b = _hand_datasets(rng)
    with pytest.raises(DataError, match="'ds1' has no condition ids"):
        compute_alignment([("ds1", DatasetData(a[1].counts)), b], factors_dim=2)
    mixed = ("ds1", DatasetData(a[1].counts, condition_id=np.array(["x"] * a[1].n_trials)))
    with pytest.raises(DataError, match="mix numbers and text"):
        compute_alignment([mixed, b], factors_dim=2)
    far = ("ds3", DatasetData(b[1].counts, condition_id=b[1].condition_id + 100))
    with pytest.raises(DataError, match="'ds3' shares no condition"):
        compute_alignment([a, b, far], factors_dim=2)
    c = ("ds3", DatasetData(b[1].counts, condition_id=np.where(b[1].condition_id > 2, 9, 1)))
    d = ("ds4", DatasetData(b[1].counts, condition_id=np.where(b[1].condition_id > 2, 9, 2)))
    e = ("ds5", DatasetData(b[1].counts, condition_id=np.where(b[1].condition_id > 2, 1, 2)))
    with pytest.raises(DataError, match="no condition is present in every dataset"):
        compute_alignment([c, d, e], factors_dim=2)
    short = ("ds2", DatasetData(b[1].counts[:, :4], condition_id=b[1].condition_id))
    with pytest.raises(DataError, match="same number of time bins"):
        compute_alignment([a, short], factors_dim=2)


def test_alignment_plot_png(tmp_path):
    """The reconstruction figure is drawn headless and saved as PNG."""
    pytest.importorskip("matplotlib")
    from lfads_runs.plots.alignment import (
        plot_alignment_reconstruction,
        save_alignment_reconstruction,
    )

    rng = np.random.default_rng(8)
    res = compute_alignment(_hand_datasets(rng), factors_dim=3)
    fig = plot_alignment_reconstruction(res, 2, [1, 4])
    assert len(fig.axes) == 4
    lines = fig.axes[0].get_lines()
    assert [ln.get_label() for ln in lines] == ["ds1", "ds2", "global PC"]
    np.testing.assert_allclose(lines[-1].get_ydata(), res.global_pcs[0, :, 0])
    path = save_alignment_reconstruction(res, tmp_path / "align.png", factors=[0, 2])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(DataError, match="out of range"):
        plot_alignment_reconstruction(res, [5])
    with pytest.raises(DataError, match="condition 42"):
        plot_alignment_reconstruction(res, 1, [42])


def test_pca_falls_back_to_complete_columns():
    """A pairwise covariance that is not positive semi-definite falls back to complete columns."""
    from lfads_runs.data.alignment import pca_loadings

    rng = np.random.default_rng(1)
    X = rng.normal(size=(4, 12))
    X[2:, 6:] = np.nan
    X[:2, :3] = np.nan
    Xc = X - np.nanmean(X, axis=1, keepdims=True)
    loadings, _ = pca_loadings(Xc, 2)
    complete = Xc[:, 3:6]
    w, v = np.linalg.eigh(np.cov(complete))
    V = v[:, np.argsort(w)[::-1][:2]]
    V *= np.sign(V[np.argmax(np.abs(V), axis=0), [0, 1]])
    np.testing.assert_allclose(loadings, V, atol=1e-10)
    with pytest.raises(DataError, match="too few"):
        pca_loadings(np.where(np.arange(12) < 11, np.nan, Xc), 2)


@pytest.mark.parametrize(
    ("n", "multi", "single", "legacy", "expected"),
    [
        (2, True, False, False, True),
        (2, True, False, True, True),  # legacy keeps stitching alignment
        (3, False, True, False, False),  # the single-dataset flag does not stitch
        (1, True, False, False, False),  # useAlignmentMatrix needs several datasets
        (1, False, True, False, True),
        (1, False, True, True, False),  # MATLAB: none for one dataset in legacy collections
        (0, True, True, False, False),
    ],
)
def test_uses_alignment(n, multi, single, legacy, expected):
    got = uses_alignment(
        n, use_alignment_matrix=multi, use_single_dataset_alignment_matrix=single, legacy=legacy
    )
    assert got is expected
