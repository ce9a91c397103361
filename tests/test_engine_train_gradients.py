"""Training-mode costs and gradients against an independent TensorFlow-style graph.

The engine's ``train`` pass (dropout masks, posterior samples, sampled KL of the
inferred inputs, AR(1) prior, L2 of gen and con, KL and L2 ramps) and its
hand-written backward passes are compared, variable by variable, with
tests/_lfads_reference.py, a naive per-step implementation written from
lfads.py/distributions.py and differentiated by torch autograd. Both see the
same random draws (recorded from the engine's noise source).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from _lfads_reference import RecordingNoise, reference_cost  # noqa: E402

from lfads_runs.engine import _ext  # noqa: E402
from lfads_runs.engine.model import LfadsModel, PassConfig  # noqa: E402
from lfads_runs.hparams import Hyperparameters  # noqa: E402
from lfads_runs.model_spec import DatasetSpec, ModelSpec  # noqa: E402

T, B = 9, 6
BASE = dict(batch_size=B, factors_dim=3, gen_dim=7, ic_dim=4, ic_enc_dim=5, co_dim=2,
            ci_enc_dim=4, con_dim=6, keep_prob=0.8, l2_gen_scale=50.0, l2_con_scale=20.0,
            kl_increase_steps=20, l2_increase_steps=10)  # fmt: skip
CASES = {
    "controller": {},
    "two_datasets": {"_datasets": 2},
    "rates_feedback": {"feedback_factors_or_rates": "rates"},
    "causal_lag2": {"do_causal_controller": True, "controller_input_lag": 2},
    "no_feedback_ic_eq_gen": {"do_feed_factors_to_controller": False, "ic_dim": 7},
    "ext_to_gen": {"ext_input_dim": 2, "inject_ext_input_to_gen": True},
    "ext_to_encoders": {"ext_input_dim": 2},
    "gaussian": {"output_dist": "gaussian", "feedback_factors_or_rates": "rates"},
    "trainable_ic_prior": {"ic_prior_var_min": 0.05, "ic_prior_var_max": 0.5},
    "no_controller": {"co_dim": 0},
    "no_dropout": {"keep_prob": 1.0},
}


def _setup(kw):
    kw = dict(kw)
    n_ds = kw.pop("_datasets", 1)
    hps = Hyperparameters(**{**BASE, **kw})
    spec = ModelSpec.build(hps, [DatasetSpec(f"d{i}.h5", 6 + i) for i in range(n_ds)], T)
    model = LfadsModel(spec)
    model.initialize(torch.Generator().manual_seed(11))
    g = torch.Generator().manual_seed(12)
    if hps.output_dist == "poisson":
        x = torch.poisson(torch.full((B, T, 6), 1.5), generator=g)
    else:
        x = torch.randn(B, T, 6, generator=g)
    ext = torch.randn(B, T, hps.ext_input_dim, generator=g) if hps.ext_input_dim else None
    return hps, spec, model, x, ext


@pytest.mark.parametrize("native", [True, False], ids=["native", "pure_torch"])
@pytest.mark.parametrize("case", list(CASES))
def test_train_pass_matches_independent_graph(case, native):
    if native and not _ext.native_available():
        pytest.skip("native kernels not available (no C++ compiler)")
    _ext.set_native_enabled(native)
    try:
        hps, spec, model, x, ext = _setup(CASES[case])
        step = 7  # inside both ramps
        noise = RecordingNoise(5)
        cfg = PassConfig.for_kind("train", hps.keep_prob)
        res = model(x, "d0.h5", cfg, ext=ext, step=step, generator=noise)
        updated = model.params.updated()
        got = torch.autograd.grad(res.cost, list(updated.values()), allow_unused=True)
    finally:
        _ext.set_native_enabled(None)
    P = {
        n: p.detach().clone().requires_grad_(n in updated)
        for n, p in model.params.by_tf_name().items()
    }
    cost, recon, kl, l2 = reference_cost(P, hps, spec, x, "d0.h5", noise.draws, step, ext=ext)
    want = torch.autograd.grad(cost, [P[n] for n in updated], allow_unused=True)
    for a, b in ((res.recon, recon), (res.kl, kl), (res.l2, l2), (res.cost, cost)):
        torch.testing.assert_close(a, b.reshape(()).to(a.dtype), rtol=2e-5, atol=1e-4)
    assert len(updated) > 10
    for (name, p), a, b in zip(updated.items(), got, want, strict=True):
        a = torch.zeros_like(p) if a is None else a
        b = torch.zeros_like(p) if b is None else b
        scale = float(b.abs().max()) + 1e-3
        assert float((a - b).abs().max()) <= 1e-4 * scale, name


def test_every_draw_of_a_train_pass_is_used():
    """Each dropout position and sample of the spec gets its own draw, in a fixed order."""
    hps, spec, model, x, ext = _setup({})
    noise = RecordingNoise(5)
    model(x, "d0.h5", PassConfig.for_kind("train", hps.keep_prob), generator=noise)
    shapes = [(k, tuple(v.shape)) for k, v in noise.draws]
    c_in = 2 * hps.ci_enc_dim + hps.factors_dim
    assert shapes == [
        ("mask", (T, B, 6)),  # data
        ("mask", (B, 2 * hps.ic_enc_dim)),  # IC encoder output
        ("normal", (B, hps.ic_dim)),  # g0 sample
        ("mask", (T, B, c_in)),  # controller input
        ("mask", (T, B, hps.gen_dim)),  # generator output before the factors
        ("normal", (T, B, hps.co_dim)),  # inferred-input samples
    ]
