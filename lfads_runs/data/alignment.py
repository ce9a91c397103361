"""Alignment matrices for stitching several datasets (run-manager.md §8.8).

lfads-run-manager's ``MultisessionAlignmentTool`` initialises each dataset's
read-in from a principal-component regression on condition averages:

1. condition-average every dataset (NaN where a dataset lacks a condition);
2. stack all datasets' neurons (time fastest within each condition) and
   subtract each neuron's mean;
3. PCA over all neurons, keeping ``min(factors_dim, n_neurons_total)``
   components, with MATLAB's sign rule (the largest-magnitude loading of each
   component is positive);
4. per dataset, regress the global scores on the dataset's centred condition
   averages: least squares (``regressGlobalPCs``) or cross-validated ridge
   (``ridgeRegressGlobalPCs``);
5. the bias is the dataset's per-neuron mean; matrices are zero-padded when
   there are fewer components than factors.

With a single dataset (``use_single_dataset_alignment_matrix``) the matrix is
the loadings themselves, zero-padded as well (MATLAB did not pad, which LFADS
then rejected).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from ..exceptions import ConfigError, DataError
from .dataset import DatasetData

__all__ = [
    "APPROACHES",
    "AlignmentResult",
    "compute_alignment",
    "condition_averages",
    "pca_loadings",
    "ridge_cv",
    "RIDGE_LAMBDAS",
    "uses_alignment",
]

APPROACHES = ("regressGlobalPCs", "ridgeRegressGlobalPCs")

#: The ridge penalty grid of lfads-run-manager's ``ridge_cv``.
RIDGE_LAMBDAS = np.logspace(-5, 2, 15)


def uses_alignment(
    n_datasets: int,
    *,
    use_alignment_matrix: bool,
    use_single_dataset_alignment_matrix: bool,
    legacy: bool = False,
) -> bool:
    """Whether a run's inputs get alignment matrices (the one place that decides).

    Several datasets need ``useAlignmentMatrix``, a single one
    ``useSingleDatasetAlignmentMatrix``, which MATLAB ignores in ``legacy``
    collections (version < 20171107).
    """
    if n_datasets > 1:
        return bool(use_alignment_matrix)
    return n_datasets == 1 and bool(use_single_dataset_alignment_matrix) and not legacy


@attrs.frozen(eq=False)
class AlignmentResult:
    """Alignment matrices and the data to plot how well they reconstruct the global PCs.

    Attributes
    ----------
    dataset_names : tuple of str
    matrices : dict
        Dataset name -> ``alignment_matrix_cxf`` (neurons x factors_dim).
    biases : dict
        Dataset name -> ``alignment_bias_c`` (neurons,), the per-neuron mean.
    conditions : array
        Condition ids, in sorted order (the columns of the averages).
    time_ms : array
        Start time of each bin (T,).
    global_pcs : array
        Global PC trajectories per condition, n_components x T x n_conditions
        (MATLAB ``pcAvg_allDatasets``); NaN for conditions missing anywhere.
    reconstructions : dict
        Dataset name -> factors_dim x T x n_conditions, the matrix applied to
        the dataset's centred condition averages (``pcAvg_reconstructionByDataset``).
    loadings : array
        n_neurons_total x n_components PCA loadings.
    explained_variance : array
        Variance of each kept component.
    approach : str
    ridge_lambdas : dict
        Dataset name -> chosen ridge penalty (ridge approach only).
    """

    dataset_names: tuple[str, ...]
    matrices: dict[str, np.ndarray]
    biases: dict[str, np.ndarray]
    conditions: np.ndarray
    time_ms: np.ndarray
    global_pcs: np.ndarray
    reconstructions: dict[str, np.ndarray]
    loadings: np.ndarray
    explained_variance: np.ndarray
    factors_dim: int
    approach: str
    ridge_lambdas: dict[str, float] = attrs.field(factory=dict)

    @property
    def n_components(self) -> int:
        return int(self.loadings.shape[1])


def _valid_condition_mask(cid: np.ndarray) -> np.ndarray:
    if cid.dtype.kind == "U":
        return cid != ""
    if cid.dtype.kind == "f":
        return ~np.isnan(cid)
    return np.ones(cid.shape, dtype=bool)


def _all_conditions(datasets: Sequence[tuple[str, DatasetData]]) -> np.ndarray:
    kinds = set()
    for name, d in datasets:
        if d.condition_id is None:
            msg = (
                f"dataset {name!r} has no condition ids; alignment matrices are computed from "
                "condition averages, so every dataset needs condition_id"
            )
            raise DataError(msg)
        kinds.add("text" if d.condition_id.dtype.kind == "U" else "number")
    if len(kinds) > 1:
        by_kind = ", ".join(
            f"{n!r}: {'text' if d.condition_id.dtype.kind == 'U' else 'numbers'}"
            for n, d in datasets
        )
        msg = f"condition ids mix numbers and text across datasets ({by_kind}); use one kind"
        raise DataError(msg)
    ids = [d.condition_id[_valid_condition_mask(d.condition_id)] for _, d in datasets]
    union = np.unique(np.concatenate(ids))
    if union.size == 0:
        msg = "no trial has a condition id; alignment needs condition averages"
        raise DataError(msg)
    return union


def condition_averages(data: DatasetData, conditions: np.ndarray) -> np.ndarray:
    """Mean over the trials of each condition: n_conditions x T x neurons (NaN where absent)."""
    cid = data.condition_id
    out = np.full((conditions.size, data.n_time, data.n_neurons), np.nan)
    if cid is None:
        return out
    for i, c in enumerate(conditions):
        sel = cid == c
        if sel.any():
            out[i] = np.nanmean(data.counts[sel].astype(np.float64), axis=0)
    return out


def _matlab_sign(coeff: np.ndarray) -> np.ndarray:
    """MATLAB pca: flip each column so its largest-magnitude element is positive."""
    idx = np.argmax(np.abs(coeff), axis=0)
    signs = np.sign(coeff[idx, np.arange(coeff.shape[1])])
    signs[signs == 0] = 1
    return coeff * signs


def pca_loadings(centred: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Loadings (variables x k) and variances of MATLAB's ``pca`` of ``centred.T``.

    ``centred`` is variables x observations, rows already centred. With NaN,
    the covariance is computed pairwise (MATLAB ``'Rows','pairwise'``); when
    that matrix is not positive semi-definite, only complete observations are
    used (``'complete'``), as lfads-run-manager falls back.
    """
    finite = np.isfinite(centred)
    if finite.all():
        x = centred.T
        _, s, vt = np.linalg.svd(x, full_matrices=False)
        var = s**2 / max(x.shape[0] - 1, 1)
        coeff = vt.T[:, :k]
        return _matlab_sign(coeff), var[:k]
    m = finite.astype(np.float64)
    x0 = np.where(finite, centred, 0.0)
    n_pairs = m @ m.T
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = (x0 @ x0.T) / (n_pairs - 1)
    if np.all(n_pairs >= 2) and np.all(np.isfinite(cov)):
        w, v = np.linalg.eigh(cov)
        if w.min() >= -1e-10 * max(abs(w.max()), 1e-300):
            order = np.argsort(w)[::-1][:k]
            return _matlab_sign(v[:, order]), w[order]
    complete = finite.all(axis=0)
    if complete.sum() < 2:
        msg = "too few conditions and time points are present in every dataset to compute the PCA"
        raise DataError(msg)
    x = centred[:, complete].T
    x = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    return _matlab_sign(vt.T[:, :k]), (s**2 / max(x.shape[0] - 1, 1))[:k]


def ridge_cv(
    y: np.ndarray,
    x: np.ndarray,
    *,
    normalize_each: bool = False,
    k_fold: int = 10,
    lambdas: np.ndarray = RIDGE_LAMBDAS,
) -> tuple[np.ndarray, float, float]:
    """Cross-validated ridge regression of ``y`` (rows x k) on ``x`` (rows x p).

    ``x`` is scaled by its overall sample standard deviation (per column with
    ``normalize_each``); rows with NaN are dropped; folds are assigned
    deterministically (1-based row r goes to fold ``r mod K``), K = min(k_fold,
    rows). Each penalty is scored by the mean squared error on each held-out
    fold after fitting on the other K-1 folds. This is proper K-fold
    validation; lfads-run-manager's ``ridge_cv`` fits on one fold and tests on
    the remaining K-1, which we deliberately do not reproduce. The intercept
    is not penalised.

    Returns
    -------
    W : (p, k) array
        Coefficients in the units of the unscaled ``x``.
    intercept : float
        Unused by the alignment (returned for completeness, first column).
    lam : float
        The chosen penalty (lowest mean loss, first on ties).
    """
    keep = np.isfinite(y).all(axis=1) & np.isfinite(x).all(axis=1)
    y, x = y[keep], x[keep]
    n, p = x.shape
    if n < 2:
        msg = "ridge regression needs at least two complete rows"
        raise DataError(msg)
    if normalize_each:
        scale = x.std(axis=0, ddof=1)
        scale[scale == 0] = 1.0
    else:
        s = x.std(ddof=1)
        scale = np.full(p, s if s > 0 else 1.0)
    xs = x / scale
    xt = np.hstack([np.ones((n, 1)), xs])
    pen = np.eye(p + 1)
    pen[0, 0] = 0.0

    def fit(rows: np.ndarray, lam: float) -> np.ndarray:
        a = xt[rows]
        return np.linalg.solve(a.T @ a + lam * pen, a.T @ y[rows])

    kk = min(k_fold, n)
    fold = np.arange(1, n + 1) % kk
    losses = np.zeros(len(lambdas))
    for i, lam in enumerate(lambdas):
        fold_losses = []
        for f in range(kk):
            test = fold == f
            train = ~test
            if not test.any() or train.sum() < 1:
                continue
            coef = fit(train, lam)
            fold_losses.append(np.mean((xt[test] @ coef - y[test]) ** 2))
        losses[i] = np.mean(fold_losses)
    best = int(np.argmin(losses))
    coef = fit(np.ones(n, dtype=bool), float(lambdas[best]))
    return coef[1:] / scale[:, None], float(coef[0, 0]), float(lambdas[best])


def _lstsq(xc: np.ndarray, sc: np.ndarray) -> np.ndarray:
    # Full-rank problems (more condition-time points than neurons, the normal case) match
    # MATLAB's ``\`` exactly; for rank-deficient ones numpy returns the minimum-norm solution
    # where MATLAB returns a basic one (both fit equally well).
    w, *_ = np.linalg.lstsq(xc, sc, rcond=None)
    return w


def _parse_extra_args(extra: Mapping[str, Any] | Sequence[Any] | None) -> dict[str, Any]:
    if extra is None:
        return {}
    if not isinstance(extra, Mapping):
        items = list(extra)
        if len(items) % 2:
            msg = f"alignment_extra_args must be name/value pairs, got {items!r}"
            raise ConfigError(msg)
        extra = dict(zip(items[::2], items[1::2], strict=True))
    out = {}
    for k, v in extra.items():
        key = {"ridgeNormalizeEach": "ridge_normalize_each"}.get(k, k)
        if key != "ridge_normalize_each":
            msg = f"alignment_extra_args: unknown option {k!r}; known: ridgeNormalizeEach"
            raise ConfigError(msg)
        out[key] = bool(v)
    return out


def compute_alignment(
    datasets: Sequence[tuple[str, DatasetData]],
    *,
    factors_dim: int,
    approach: str = "regressGlobalPCs",
    extra_args: Mapping[str, Any] | Sequence[Any] | None = None,
) -> AlignmentResult:
    """Alignment matrices and biases for datasets already binned at the spike bin.

    Parameters
    ----------
    datasets : sequence of (name, DatasetData)
        All with condition ids and the same number of time bins. One dataset
        gives the single-dataset alignment (the PCA loadings).
    factors_dim : int
        ``c_factors_dim``; matrices are neurons x factors_dim.
    approach : {'regressGlobalPCs', 'ridgeRegressGlobalPCs'}
    extra_args : mapping or name/value sequence, optional
        ``ridgeNormalizeEach`` (bool).

    Raises
    ------
    ConfigError
        Unknown approach or option, factors_dim < 1.
    DataError
        Missing condition ids, different trial lengths, a dataset sharing no
        condition with the others, no condition common to all datasets, NaN
        in a result.
    """
    if approach not in APPROACHES:
        msg = f"alignment_approach must be one of {', '.join(APPROACHES)}, got {approach!r}"
        raise ConfigError(msg)
    if factors_dim < 1:
        msg = f"factors_dim must be at least 1, got {factors_dim}"
        raise ConfigError(msg)
    opts = _parse_extra_args(extra_args)
    if not datasets:
        msg = "alignment needs at least one dataset"
        raise DataError(msg)
    names = tuple(n for n, _ in datasets)
    lengths = {n: d.n_time for n, d in datasets}
    if len(set(lengths.values())) > 1:
        msg = f"alignment needs the same number of time bins in every dataset after rebinning, got {lengths}"
        raise DataError(msg)
    conditions = _all_conditions(datasets)
    T = datasets[0][1].n_time
    n_cond = conditions.size

    present = {}
    for name, d in datasets:
        present[name] = set(d.condition_id[_valid_condition_mask(d.condition_id)].tolist())
    if len(datasets) > 1:
        for name, conds in present.items():
            others = set().union(*(c for n, c in present.items() if n != name))
            if not conds & others:
                msg = (
                    f"dataset {name!r} shares no condition with the other datasets "
                    f"(its conditions: {sorted(conds)[:10]}{'...' if len(conds) > 10 else ''}); "
                    "alignment needs conditions recorded in several datasets"
                )
                raise DataError(msg)
        common = set.intersection(*present.values())
        if not common:
            msg = (
                "no condition is present in every dataset; the global PC scores are undefined "
                "wherever a dataset lacks a condition, so alignment needs at least one condition "
                "common to all datasets"
            )
            raise DataError(msg)

    blocks = []
    for _, d in datasets:
        avg = condition_averages(d, conditions)  # C x T x N
        blocks.append(np.transpose(avg, (2, 0, 1)).reshape(d.n_neurons, n_cond * T))
    stacked = np.vstack(blocks)  # neurons_total x (T * C), time fastest
    with np.errstate(invalid="ignore"):
        row_means = np.nanmean(stacked, axis=1)
    centred = stacked - row_means[:, None]
    k = min(factors_dim, stacked.shape[0])
    loadings, variances = pca_loadings(centred, k)

    with np.errstate(invalid="ignore"):
        scores = loadings.T @ centred  # NaN columns stay NaN
    matrices, biases, recon, lambdas = {}, {}, {}, {}
    offsets = np.cumsum([0] + [d.n_neurons for _, d in datasets])
    for i, (name, _d) in enumerate(datasets):
        rows = slice(offsets[i], offsets[i + 1])
        x_d = centred[rows]
        bias = row_means[rows]
        if len(datasets) == 1:
            w = loadings
        else:
            cols = np.isfinite(x_d).all(axis=0) & np.isfinite(scores).all(axis=0)
            xs = stacked[rows][:, cols]
            xc = (xs - xs.mean(axis=1, keepdims=True)).T
            ss = scores[:, cols]
            sc = (ss - ss.mean(axis=1, keepdims=True)).T
            if approach == "regressGlobalPCs":
                w = _lstsq(xc, sc)
            else:
                w, _, lam = ridge_cv(sc, xc, normalize_each=opts.get("ridge_normalize_each", False))
                lambdas[name] = lam
        if w.shape[1] < factors_dim:
            w = np.hstack([w, np.zeros((w.shape[0], factors_dim - w.shape[1]))])
        if not (np.all(np.isfinite(w)) and np.all(np.isfinite(bias))):
            msg = f"dataset {name!r}: the alignment matrix or bias contains NaN (a neuron without data in every condition?)"
            raise DataError(msg)
        matrices[name] = w
        biases[name] = bias
        with np.errstate(invalid="ignore"):
            recon[name] = (w.T @ x_d).reshape(factors_dim, n_cond, T).transpose(0, 2, 1)
    first = datasets[0][1]
    return AlignmentResult(
        dataset_names=names,
        matrices=matrices,
        biases=biases,
        conditions=conditions,
        time_ms=first.time_vector_ms.copy(),
        global_pcs=scores.reshape(k, n_cond, T).transpose(0, 2, 1),
        reconstructions=recon,
        loadings=loadings,
        explained_variance=variances,
        factors_dim=factors_dim,
        approach=approach,
        ridge_lambdas=lambdas,
    )
