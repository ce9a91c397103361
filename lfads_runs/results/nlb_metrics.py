"""The Neural Latents Benchmark metrics, as ``nlb_tools.evaluation`` defines them.

Arrays are ``[trials, time, neurons]`` (rates and spike counts per bin). Every
function checks its inputs and raises :class:`~lfads_runs.DataError` naming the
argument, instead of NLB's ``assert``; the values agree with ``nlb_tools`` to
rounding (tests/test_nlb_metrics.py compares them on the same arrays).

- :func:`poisson_nll`: sum of ``λ − y·ln λ + ln Γ(y+1)`` over the entries whose
  spikes are not NaN; zero rates count as 1e-9; negative or NaN rates are errors.
- :func:`bits_per_spike`: (NLL of the null model − NLL of the rates) / (Σ y · ln 2);
  the null model predicts each neuron's mean count over trials and time.
  co-bps is this on held-out neurons, fp-bps on the forward bins (held-in and
  held-out neurons side by side).
- :func:`psth_r2`: ``r2_score`` of the true PSTHs against the condition-averaged
  rates (uniform over neurons), bins where the PSTH is NaN left out.
- :func:`velocity_r2`: ridge regression from rates to behaviour, one decoder per
  decode mask, α by ``GridSearchCV`` over ``logspace(-4, 0, 9)`` (or 1e-2).

scikit-learn is needed for the two R² metrics only (``pip install scikit-learn``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..exceptions import DataError, MissingDependencyError

__all__ = ["poisson_nll", "bits_per_spike", "psth_r2", "velocity_r2", "NULL_RATE_FLOOR"]

#: What NLB substitutes for a predicted rate of exactly zero.
NULL_RATE_FLOOR = 1e-9


def _gammaln(x: np.ndarray) -> np.ndarray:
    try:
        from scipy.special import gammaln
    except ImportError:  # same values from the standard library, more slowly
        return np.frompyfunc(math.lgamma, 1, 1)(x).astype(np.float64)
    return gammaln(x)


def _float(a: object, name: str) -> np.ndarray:
    try:
        out = np.array(a, dtype=np.float64)  # a copy: inputs are never changed
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name} must be a numeric array: {exc}") from None
    return out


def poisson_nll(rates: np.ndarray, spikes: np.ndarray) -> float:
    """Poisson negative log-likelihood of ``spikes`` under ``rates`` (summed).

    Raises
    ------
    DataError
        Shapes differ, or rates are negative or NaN where spikes are not NaN.
    """
    r = _float(rates, "rates")
    y = _float(spikes, "spikes")
    if r.shape != y.shape:
        raise DataError(f"rates {r.shape} and spikes {y.shape} must have the same shape")
    keep = ~np.isnan(y)
    r, y = r[keep], y[keep]
    if np.isnan(r).any():
        raise DataError("rates hold NaN where spikes are given")
    if (r < 0).any():
        raise DataError(f"rates must be >= 0; found {r[r < 0][0]}")
    r[r == 0] = NULL_RATE_FLOOR
    return float(np.sum(r - y * np.log(r) + _gammaln(y + 1.0)))


def bits_per_spike(rates: np.ndarray, spikes: np.ndarray) -> float:
    """Bits per spike of ``rates`` over the per-neuron mean-rate null model.

    Raises
    ------
    DataError
        As :func:`poisson_nll`; also when the spikes hold no spike at all.
    """
    y = _float(spikes, "spikes")
    nll_model = poisson_nll(rates, y)
    axes = tuple(range(y.ndim - 1))
    with np.errstate(invalid="ignore"):
        null = np.broadcast_to(np.nanmean(y, axis=axes, keepdims=True), y.shape)
    null = np.where(np.isnan(null), 0.0, null)  # an all-NaN neuron has no entries anyway
    nll_null = poisson_nll(null, y)
    total = np.nansum(y)
    if total <= 0:
        raise DataError("bits per spike needs spikes; the spike counts sum to zero")
    return float((nll_null - nll_model) / total / np.log(2))


def _sklearn():
    try:
        from sklearn.linear_model import Ridge
        from sklearn.metrics import r2_score
        from sklearn.model_selection import GridSearchCV
    except ImportError as exc:
        raise MissingDependencyError(
            "the R² metrics need scikit-learn: pip install scikit-learn"
        ) from exc
    return Ridge, GridSearchCV, r2_score


def psth_r2(
    psth: np.ndarray,
    rates: np.ndarray,
    cond_idx: Sequence[np.ndarray],
    jitter: np.ndarray | None = None,
) -> float:
    """R² of the condition-averaged ``rates`` [trials, T, N] against ``psth`` [conditions, T, N].

    ``cond_idx[c]`` lists the trials (rows of ``rates``) of condition ``c``;
    ``jitter[i]`` shifts trial ``i`` by that many bins (NaN-padded), as NLB does.

    Raises
    ------
    DataError
        Shapes disagree, an index is out of range, or rates are NaN where the PSTH is defined.
    """
    _, _, r2_score = _sklearn()
    p = _float(psth, "psth")
    r = _float(rates, "rates")
    if p.ndim != 3 or r.ndim != 3 or p.shape[1:] != r.shape[1:]:
        raise DataError(
            f"psth {p.shape} (conditions x time x neurons) and rates {r.shape} "
            "(trials x time x neurons) must agree in time and neurons"
        )
    if len(cond_idx) != p.shape[0]:
        raise DataError(f"cond_idx lists {len(cond_idx)} conditions, the psth has {p.shape[0]}")
    n = r.shape[0]
    jit = np.zeros(n, dtype=np.int64) if jitter is None else np.asarray(jitter, dtype=np.int64)
    if jit.shape != (n,):
        raise DataError(f"jitter has shape {jit.shape}, expected ({n},)")
    true_list, pred_list = [], []
    for c, idx in enumerate(cond_idx):
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        if idx.size == 0:
            continue
        if idx.min() < 0 or idx.max() >= n:
            raise DataError(f"cond_idx[{c}] names trials outside 0..{n - 1}")
        pred = np.mean([_shift(r[i], int(jit[i])) for i in idx], axis=0)
        ok = ~np.isnan(p[c, :, 0])
        if np.isnan(pred[ok]).any():
            raise DataError(f"rates of condition {c} are NaN in bins where the PSTH is defined")
        true_list.append(p[c][ok])
        pred_list.append(pred[ok])
    if not true_list:
        raise DataError("psth_r2 needs at least one condition with trials")
    return float(r2_score(np.vstack(true_list), np.vstack(pred_list)))


def _shift(trial: np.ndarray, j: int) -> np.ndarray:
    """A trial [T, N] shifted by ``j`` bins, NaN where nothing was shifted in (NLB's jitter)."""
    if j == 0:
        return trial
    pad = np.full((abs(j), trial.shape[1]), np.nan)
    return np.vstack([pad, trial[:-j]]) if j > 0 else np.vstack([trial[-j:], pad])


def velocity_r2(
    train_rates: np.ndarray,
    train_behavior: np.ndarray,
    eval_rates: np.ndarray,
    eval_behavior: np.ndarray,
    *,
    train_decode_mask: np.ndarray | None = None,
    eval_decode_mask: np.ndarray | None = None,
    grid_search: bool = True,
) -> float:
    """Mean R² of ridge decoders from rates to behaviour, one per decode-mask column.

    Rates are [trials, T, N], behaviour [trials, T, K]; time bins whose behaviour
    is NaN are left out. Without masks one decoder uses every trial.

    Raises
    ------
    DataError
        Shapes disagree, or rates are NaN where behaviour is given.
    """
    Ridge, GridSearchCV, _ = _sklearn()
    arrays = {
        "train_rates": _float(train_rates, "train_rates"),
        "train_behavior": _float(train_behavior, "train_behavior"),
        "eval_rates": _float(eval_rates, "eval_rates"),
        "eval_behavior": _float(eval_behavior, "eval_behavior"),
    }
    for split in ("train", "eval"):
        r, b = arrays[f"{split}_rates"], arrays[f"{split}_behavior"]
        if r.ndim != 3 or b.ndim != 3 or r.shape[:2] != b.shape[:2]:
            raise DataError(
                f"{split}_rates {r.shape} and {split}_behavior {b.shape} must both be "
                "trials x time x channels with the same trials and time"
            )
    masks = {}
    for split, m in (("train", train_decode_mask), ("eval", eval_decode_mask)):
        n = arrays[f"{split}_rates"].shape[0]
        m = np.ones((n, 1), dtype=bool) if m is None else np.asarray(m, dtype=bool)
        if m.ndim == 1:
            m = m[:, None]
        if m.shape[0] != n:
            raise DataError(f"{split}_decode_mask has {m.shape[0]} rows, expected {n} trials")
        masks[split] = m
    if masks["train"].shape[1] != masks["eval"].shape[1]:
        raise DataError("train_decode_mask and eval_decode_mask differ in their number of masks")
    scores = []
    for i in range(masks["train"].shape[1]):
        xy = []
        for split in ("train", "eval"):
            sel = masks[split][:, i]
            r = arrays[f"{split}_rates"][sel].reshape(-1, arrays[f"{split}_rates"].shape[2])
            b = arrays[f"{split}_behavior"][sel].reshape(-1, arrays[f"{split}_behavior"].shape[2])
            ok = ~np.isnan(b[:, 0])
            r, b = r[ok], b[ok]
            if np.isnan(r).any():
                raise DataError(f"{split}_rates hold NaN in bins where behaviour is given")
            xy.append((r, b))
        if grid_search:
            model = GridSearchCV(Ridge(), {"alpha": np.logspace(-4, 0, 9)})
        else:
            model = Ridge(alpha=1e-2)
        model.fit(*xy[0])
        scores.append(model.score(*xy[1]))
    return float(np.mean(scores))
