"""The native controller -> generator loop equals the per-step autograd version."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from lfads_runs.engine import _ext  # noqa: E402
from lfads_runs.engine.model import LfadsModel, PassConfig  # noqa: E402
from lfads_runs.hparams import Hyperparameters  # noqa: E402
from lfads_runs.model_spec import DatasetSpec, ModelSpec  # noqa: E402

CASES = [
    {},
    {"feedback_factors_or_rates": "rates"},
    {"feedback_factors_or_rates": "rates", "output_dist": "gaussian"},
    {"feedback_factors_or_rates": "rates", "factors_dim": 6},  # identity read-out
    {"do_feed_factors_to_controller": False},
    {"do_causal_controller": True, "controller_input_lag": 2},
    {"ext_input_dim": 2, "inject_ext_input_to_gen": True, "keep_prob": 1.0},
    {"cell_clip_value": 0.5, "co_mean_corr_scale": 0.3},
    # sizes that fill several 6-row tiles and column blocks, with remainders, in the kernels
    {
        "batch_size": 40,
        "gen_dim": 70,
        "con_dim": 33,
        "ci_enc_dim": 20,
        "factors_dim": 9,
        "co_dim": 3,
        "feedback_factors_or_rates": "rates",
    },  # fmt: skip
]


@pytest.mark.parametrize("kw", CASES)
def test_native_loop_matches_autograd_loop(kw):
    if not _ext.native_available():
        pytest.skip("native kernels not available (no C++ compiler)")
    base = dict(batch_size=5, factors_dim=3, gen_dim=7, ic_dim=4, ic_enc_dim=5, co_dim=2,
                ci_enc_dim=4, con_dim=6, keep_prob=0.8, l2_con_scale=10.0)  # fmt: skip
    base.update(kw)
    hps = Hyperparameters(**base)
    one = hps.feedback_factors_or_rates == "rates"
    spec = ModelSpec.build(hps, [DatasetSpec(f"d{i}", 6 + i) for i in range(1 if one else 2)], 9)
    model = LfadsModel(spec)
    model.initialize(torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(2)
    B = hps.batch_size
    if hps.output_dist == "poisson":
        x = torch.poisson(torch.full((B, 9, 6), 2.0), generator=g)
    else:
        x = torch.randn(B, 9, 6, generator=g)
    ext = torch.randn(B, 9, 2, generator=g) if hps.ext_input_dim else None
    names = list(model.params.updated())
    params = list(model.params.updated().values())
    for kind in ("train", "posterior_push_mean"):
        results = []
        for fused in (True, False):
            model.fused_controller = fused
            r = model(
                x,
                "d0",
                PassConfig.for_kind(kind, hps.keep_prob),
                ext=ext,
                step=3,
                generator=torch.Generator().manual_seed(5),
                want_outputs=True,
            )
            grads = torch.autograd.grad(r.cost, params, allow_unused=True)
            results.append((r, grads))
        (ra, ga), (rb, gb) = results
        for key in ra.outputs:
            torch.testing.assert_close(ra.outputs[key], rb.outputs[key], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(ra.cost, rb.cost, rtol=1e-5, atol=1e-4)
        for name, a, b in zip(names, ga, gb, strict=True):
            if b is None:
                assert a is None or float(a.abs().max()) == 0.0, name
                continue
            scale = float(b.abs().max()) + 1.0
            assert float((a - b).abs().max()) <= 2e-5 * scale, name
