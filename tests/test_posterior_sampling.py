"""Sample-and-average computes the data-only part once per trial, with the same statistics.

The reference is the former way: every trial copied ``S`` times and passed through
the whole model. With the same random source both ways draw the same numbers in
the same order (the encoders draw nothing when nothing is dropped out), so they
agree to float32 round-off; with different sources they agree within Monte-Carlo
error. Models: no controller (stitched, Poisson) and a controller with external
inputs, no controller with external inputs to the generator and the identity
read-out, and a Gaussian output, on the native kernels (without a controller the
generator, read-out and averages are one kernel) and on the pure-torch path.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lfads_runs.data.synthetic import lorenz  # noqa: E402
from lfads_runs.engine import _ext  # noqa: E402
from lfads_runs.engine._rng import NoiseSource  # noqa: E402
from lfads_runs.engine.data import build_spec, load_datasets  # noqa: E402
from lfads_runs.engine.model import LfadsModel, PassConfig  # noqa: E402
from lfads_runs.engine.posterior import _ROWS_PER_PASS, posterior_arrays  # noqa: E402
from lfads_runs.hparams import Hyperparameters  # noqa: E402
from lfads_runs.io.lfads_input import LfadsInput, write_lfads_input  # noqa: E402

KIND = "posterior_sample_and_average"
BASE = dict(batch_size=8, factors_dim=4, gen_dim=12, ic_dim=5, ic_enc_dim=10, co_dim=0)
CONFIGS = {
    "no_controller": dict(BASE),
    "controller_ext": dict(BASE, co_dim=2, ci_enc_dim=8, con_dim=8, ext_input_dim=2),
    # The native averaging pass with external inputs to the generator and the identity
    # read-out (one dataset, as many factors as neurons).
    "no_controller_ext_identity": dict(
        BASE, factors_dim=9, ext_input_dim=2, inject_ext_input_to_gen=True
    ),
    # The generic read-out of the averaged outputs (the Poisson one shares exp(lin)).
    "gaussian": dict(BASE, output_dist="gaussian"),
}


def _model(folder: Path, config: str):
    hps = Hyperparameters(**CONFIGS[config])
    n_ds = 2 if config == "no_controller" else 1
    d = lorenz(
        n_datasets=n_ds, n_conditions=4, trials_per_condition=4, n_neurons=(9, 11)[:n_ds],
        duration_ms=200, bin_ms=10, seed=2, mean_rate_hz=25.0,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    gaussian = hps.output_dist == "gaussian"
    for ds in d.datasets:
        x = ds.counts
        if gaussian:  # float values for a Gaussian output
            x = (x + rng.normal(size=x.shape)).astype(np.float32)
        n = x.shape[0]
        ext = rng.normal(size=(n, x.shape[1], 2)).astype(np.float32)
        has_ext = hps.ext_input_dim > 0
        write_lfads_input(
            folder / f"lfads_{ds.name}.h5",
            LfadsInput(
                train_data=x[6:],
                valid_data=x[:6],
                train_ext_input=ext[6:] if has_ext else None,
                valid_ext_input=ext[:6] if has_ext else None,
            ),
        )
    datasets = load_datasets(folder, hps, for_training=False)
    spec = build_spec(hps, datasets)
    model = LfadsModel(spec)
    model.initialize(torch.Generator().manual_seed(4))
    with torch.no_grad():  # larger posterior variances than at initialisation: visible noise
        model.params["LFADS/z/ic_enc_2_post_g0/logvar/b"].fill_(0.5)
    return model, datasets


def _repeated_copies(model, data, ext, name, S, gen):
    """The former sample-and-average: S copies of each trial through the whole model.

    Returns the averaged outputs and the per-copy factors [trials, S, T, F].
    """
    G = max(1, min(data.shape[0], _ROWS_PER_PASS // S))
    means: dict[str, list[np.ndarray]] = {}
    factors = []
    with torch.no_grad():
        for start in range(0, data.shape[0], G):
            g = min(G, data.shape[0] - start)
            x = torch.as_tensor(np.repeat(data[start : start + g], S, 0), dtype=torch.float32)
            e = None
            if ext is not None:
                e = torch.as_tensor(np.repeat(ext[start : start + g], S, 0), dtype=torch.float32)
            res = model(x, name, PassConfig.for_kind(KIND), ext=e, generator=gen, want_outputs=True)
            for k, v in res.outputs.items():
                v = v.reshape(g, S, *v.shape[1:]).double()
                means.setdefault(k, []).append(v.mean(1).numpy())
                if k == "factors":
                    factors.append(v.numpy())
            lb = (res.log_p_b - res.kl_b).reshape(g, S).double()
            recon_kl = -res.log_p_b.reshape(g, S).mean(1) + res.kl_weight * res.kl_b.reshape(
                g, S
            ).mean(1)
            bounds = {
                "costs": recon_kl + res.l2_weight * res.l2,
                "nll_bound_vaes": -lb.mean(1),
                "nll_bound_iwaes": -(torch.logsumexp(lb, 1) - math.log(S)),
            }
            for k, v in bounds.items():
                means.setdefault(k, []).append(v.double().numpy())
    return {k: np.concatenate(v) for k, v in means.items()}, np.concatenate(factors)


@pytest.fixture(params=["native", "torch"])
def path(request):
    if request.param == "native" and not _ext.native_available():
        pytest.skip("native kernels not available")
    _ext.set_native_enabled(None if request.param == "native" else False)
    yield request.param
    _ext.set_native_enabled(None)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_same_draws_give_the_former_averages(tmp_path, config, path, monkeypatch):
    model, datasets = _model(tmp_path, config)
    S = 24
    fused = []  # results of the native averaging pass (None: not available)
    run = model._generator_poisson_averaged
    monkeypatch.setattr(
        model, "_generator_poisson_averaged", lambda *a: fused.append(run(*a)) or fused[-1]
    )
    for name, ds in datasets.items():
        data, ext = ds.data("valid"), ds.ext("valid")
        got = posterior_arrays(
            model, data, name, KIND, ext=ext, batch_size=S, step=0, generator=NoiseSource(9)
        )
        want, _ = _repeated_copies(model, data, ext, name, S, NoiseSource(9))
        assert set(want) <= set(got)
        for key, w in want.items():
            assert got[key].dtype == np.float64 and got[key].shape == w.shape, key
            np.testing.assert_allclose(got[key], w, rtol=2e-5, atol=2e-5, err_msg=key)
        assert np.isfinite(got["costs"]).all() and np.isfinite(got["nll_bound_iwaes"]).all()
    # Without a controller the native path is the one kernel; the torch path has none.
    poisson_no_controller = config.startswith("no_controller")
    assert len(fused) == (len(datasets) if poisson_no_controller else 0)
    assert all((r is not None) == (path == "native") for r in fused)


@pytest.mark.parametrize("threads", [1, 2])
def test_native_averages_do_not_depend_on_row_blocks(tmp_path, threads):
    """The native averaging pass splits rows into per-thread blocks and cache-sized chunks
    that cut across trials (100 samples: chunks of 96 rows, blocks of whole 6-row tiles);
    every split gives the averages of the repeated copies."""
    if not _ext.native_available():
        pytest.skip("native kernels not available")
    model, datasets = _model(tmp_path, "no_controller")
    name, ds = next(iter(datasets.items()))
    data = ds.data("valid")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        got = posterior_arrays(
            model, data, name, KIND, batch_size=100, step=0, generator=NoiseSource(5)
        )
        want, _ = _repeated_copies(model, data, None, name, 100, NoiseSource(5))
    finally:
        torch.set_num_threads(before)
    for key, w in want.items():
        np.testing.assert_allclose(got[key], w, rtol=2e-5, atol=2e-5, err_msg=key)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_other_draws_agree_within_monte_carlo_error(tmp_path, config):
    model, datasets = _model(tmp_path, config)
    S = 200
    name, ds = next(iter(datasets.items()))
    data, ext = ds.data("valid"), ds.ext("valid")
    got = posterior_arrays(
        model, data, name, KIND, ext=ext, batch_size=S, step=0, generator=NoiseSource(1)
    )
    want, copies = _repeated_copies(model, data, ext, name, S, NoiseSource(2))
    se = copies.std(1, ddof=1) * math.sqrt(2.0 / S)  # of a difference of two means of S
    z = np.abs(got["factors"] - want["factors"]) / np.maximum(se, 1e-9)
    assert copies.std(1).mean() > 1e-3, "the samples must differ for this test to mean anything"
    assert z.max() < 6.0, z.max()
    assert 0.3 < np.sqrt((z**2).mean()) < 2.0  # about 1 if the two estimate the same mean
    # Different draws really were used (no accidental reuse of one stream).
    assert not np.allclose(got["factors"], want["factors"], rtol=0, atol=1e-7)


def test_repeats_needs_keep_prob_one(tmp_path):
    model, datasets = _model(tmp_path, "no_controller")
    name, ds = next(iter(datasets.items()))
    x = torch.as_tensor(ds.data("valid"), dtype=torch.float32)
    with pytest.raises(ValueError, match="keep_prob 1"):
        model(x, name, PassConfig.for_kind("train", 0.9), generator=NoiseSource(0), repeats=3)
