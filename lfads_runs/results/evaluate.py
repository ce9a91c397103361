"""NLB metrics of a trained run's posterior means on its own input data.

For every dataset and split (``train``, ``valid``), the posterior-mean rates are
scored against the counts of ``lfads_<ds>.h5`` with
:func:`~lfads_runs.results.nlb_metrics.bits_per_spike`:

``bps``
    all neurons, encoded bins;
``bps_heldin``, ``co_bps``
    held-in and held-out neurons in the encoded bins (co-bps only with held-out neurons);
``fp_bps``
    the forward-prediction bins, every neuron (only with ``fp_len`` > 0).

PSTH and behaviour R² need conditions and behaviour the input files do not
carry: call :func:`~lfads_runs.results.nlb_metrics.psth_r2` and
:func:`~lfads_runs.results.nlb_metrics.velocity_r2` with them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..exceptions import DataError
from .nlb_metrics import bits_per_spike

__all__ = ["evaluate_run", "split_metrics"]


def split_metrics(
    rates: np.ndarray,
    counts: np.ndarray,
    *,
    heldin: np.ndarray | None,
    fp_len: int,
) -> dict[str, float]:
    """The metrics above for one split (rates and counts [trials, T, D])."""
    T = counts.shape[1]
    T_enc = T - fp_len
    D = counts.shape[2]
    hin = np.arange(D) if heldin is None else np.asarray(heldin)
    hout = np.setdiff1d(np.arange(D), hin)
    out: dict[str, float] = {}

    def bps(r: np.ndarray, y: np.ndarray) -> float:
        try:
            return bits_per_spike(r, y)
        except DataError:
            if np.nansum(y) <= 0:  # no spikes in this region: the metric is undefined
                return math.nan
            raise

    enc_r, enc_y = rates[:, :T_enc], counts[:, :T_enc]
    out["bps"] = bps(enc_r, enc_y)
    if hout.size:
        out["bps_heldin"] = bps(enc_r[..., hin], enc_y[..., hin])
        out["co_bps"] = bps(enc_r[..., hout], enc_y[..., hout])
    if fp_len > 0:
        out["fp_bps"] = bps(rates[:, T_enc:], counts[:, T_enc:])
    return out


def evaluate_run(run: Any, kind: str | None = None) -> dict[str, Any]:
    """Metrics of one run: per dataset and split, and the last fit-log selection metrics.

    Raises
    ------
    MissingOutputError
        The run has no posterior means (sample the posterior first) or no inputs.
    DataError
        The posterior means do not fit the input files.
    """
    from ..data.cosmoothing import read_split
    from ..io.lfads_input import read_lfads_input

    means = run.load_posterior_means(kind)
    fp_len = int(getattr(run.params, "fp_len", 0) or 0)
    datasets: dict[str, Any] = {}
    for ds, pm in means.items():
        if pm.rates is None:
            raise DataError(f"{run.name} {ds}: NLB metrics need Poisson rates (output_dist)")
        path = run.paths.input_file(ds)
        inp = read_lfads_input(path)
        split = read_split(inp, path)
        per_split = {}
        for name, data, inds in (
            ("train", inp.train_data, pm.train_inds),
            ("valid", inp.valid_data, pm.valid_inds),
        ):
            rates = pm.rates[np.asarray(inds, dtype=np.int64) - 1]
            if rates.shape != data.shape:
                raise DataError(
                    f"{run.name} {ds}: {name} rates {rates.shape} do not fit the input "
                    f"{path} ({data.shape})"
                )
            per_split[name] = split_metrics(rates, data, heldin=split.heldin, fp_len=fp_len)
        datasets[ds] = per_split
    out: dict[str, Any] = {
        "run_spec": run.name,
        "param_hash": run.param_hash,
        "kind": kind or run.params.posterior_mean_kind,
        "datasets": datasets,
    }
    if run.file_fitlog.is_file():
        log = run.load_fit_log()
        out["selection"] = {
            k: float(v[-1]) for k, v in log.metrics.items() if len(v) and np.isfinite(v[-1])
        }
    return out
