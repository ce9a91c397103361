"""NLB metrics of lfads_runs.results.nlb_metrics against nlb_tools.evaluation on the same arrays."""

from __future__ import annotations

import numpy as np
import pytest

from lfads_runs import DataError
from lfads_runs.results import nlb_metrics as m

nlb = pytest.importorskip("nlb_tools.evaluation")
pytest.importorskip("sklearn")


def _data(seed=0, n=40, T=25, N=12):
    rng = np.random.default_rng(seed)
    rates = rng.gamma(2.0, 0.3, size=(n, T, N))
    spikes = rng.poisson(rates).astype(float)
    pred = rates * rng.uniform(0.7, 1.3, size=rates.shape)
    return rates, spikes, pred


def _close(a, b):
    assert abs(a - b) <= 1e-9 * max(abs(b), 1e-12), (a, b)


def test_bits_per_spike_matches_nlb_including_nan_spikes_and_zero_rates():
    """co-bps agrees with nlb_tools to 1e-9 relative, also with NaN spikes and zero rates."""
    _, spikes, pred = _data()
    spikes[3, 5:9, 2] = np.nan
    pred[0, 0, :4] = 0.0
    spikes[:, :, 7] = 0.0  # a silent neuron: the null rate is floored at 1e-9
    ours = m.bits_per_spike(pred, spikes)
    _close(ours, float(nlb.bits_per_spike(pred.copy(), spikes.copy())))
    _close(m.poisson_nll(pred, spikes), float(nlb.neg_log_likelihood(pred.copy(), spikes.copy())))
    assert ours > 0


def test_psth_r2_matches_nlb_with_jitter():
    """PSTH R² agrees with nlb_tools, with jittered trials and NaN-padded PSTH bins."""
    rates, _, pred = _data(1, n=30)
    cond = [np.arange(0, 10), np.arange(10, 20), np.arange(20, 30)]
    psth = np.stack([rates[c].mean(0) for c in cond])
    psth[:, -2:, :] = np.nan
    # Negative shifts NaN-pad the last bins, which the NaN PSTH bins leave out.
    jitter = -np.random.default_rng(2).integers(0, 3, size=30)
    assert jitter.min() < 0
    ours = m.psth_r2(psth, pred, cond, jitter)
    _close(ours, float(nlb.eval_psth(psth, pred, cond, jitter=jitter)))


def test_velocity_r2_matches_nlb_with_masks_and_grid():
    """Velocity R² agrees with nlb_tools for two decode masks, with and without the grid."""
    rng = np.random.default_rng(3)
    tr, _, trp = _data(4, n=50)
    ev, _, evp = _data(5, n=20)
    W = rng.standard_normal((12, 2))
    tb = tr @ W + 0.1 * rng.standard_normal((50, 25, 2))
    eb = ev @ W + 0.1 * rng.standard_normal((20, 25, 2))
    tb[0, :3] = np.nan
    tm = np.stack([np.arange(50) % 2 == 0, np.arange(50) % 2 == 1], 1)
    em = np.stack([np.arange(20) % 2 == 0, np.arange(20) % 2 == 1], 1)
    for grid in (True, False):
        ours = m.velocity_r2(
            trp, tb, evp, eb, train_decode_mask=tm, eval_decode_mask=em, grid_search=grid
        )
        ref = nlb.velocity_decoding(trp, tb, tm, evp, eb, em, grid_search=grid)
        _close(ours, float(ref))
        assert 0.5 < ours <= 1.0


@pytest.mark.parametrize(
    ("rates", "spikes", "match"),
    [
        (np.ones((2, 3, 4)), np.ones((2, 3, 5)), "same shape"),
        (-np.ones((2, 3, 4)), np.ones((2, 3, 4)), ">= 0"),
        (np.full((2, 3, 4), np.nan), np.ones((2, 3, 4)), "NaN"),
        (np.ones((2, 3, 4)), np.zeros((2, 3, 4)), "sum to zero"),
    ],
)
def test_bad_metric_inputs_raise_one_clear_error(rates, spikes, match):
    """Mismatched shapes, negative or NaN rates and spike-free data raise DataError."""
    with pytest.raises(DataError, match=match):
        m.bits_per_spike(rates, spikes)
