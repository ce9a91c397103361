"""Engine building blocks against hand-computed numpy: GRU cells, the fused scan, TF Adam."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lfads_runs.engine._scan import gru_scan, gru_scan_reference  # noqa: E402
from lfads_runs.engine.model import _gate_bias, _gengru_step  # noqa: E402
from lfads_runs.engine.optim import TFAdam, clip_by_global_norm  # noqa: E402


def _t64(a):
    return torch.tensor(a, dtype=torch.float64)


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def _np_gru(x, h, W_ru, b_ru, W_c, b_c, clip):
    """Spec §2.1, literally: one [x, h] matrix, forget bias on u, reset before the product."""
    H = h.shape[1]
    g = np.concatenate([x, h], 1) @ W_ru + b_ru
    r, u = _sig(g[:, :H]), _sig(g[:, H:] + 1.0)
    c = np.tanh(np.concatenate([x, r * h], 1) @ W_c + b_c)
    return np.clip(u * h + (1 - u) * c, -clip, clip)


def _np_gengru(x, h, Wx_ru, Wh_ru, b_ru, Wx_c, Wh_c, b_c, clip):
    """Spec §2.2: input matrices without bias, recurrent matrices with bias."""
    H = h.shape[1]
    g = x @ Wx_ru + h @ Wh_ru + b_ru
    r, u = _sig(g[:, :H]), _sig(g[:, H:] + 1.0)
    c = np.tanh(x @ Wx_c + (r * h) @ Wh_c + b_c)
    return np.clip(u * h + (1 - u) * c, -clip, clip)


@pytest.mark.parametrize("clip", [5.0, 0.3])
def test_encoder_gru_scan_matches_numpy(clip):
    rng = np.random.default_rng(0)
    B, T, E, H = 4, 6, 3, 5
    x = rng.normal(size=(T, B, E))
    W_ru = rng.normal(size=(E + H, 2 * H))
    b_ru = rng.normal(size=(1, 2 * H))
    W_c = rng.normal(size=(E + H, H))
    b_c = rng.normal(size=(1, H))
    h0 = rng.normal(size=(1, H)) * 3
    h = np.repeat(h0, B, 0)
    want = []
    for t in range(T):
        h = _np_gru(x[t], h, W_ru, b_ru, W_c, b_c, clip)
        want.append(h)
    want = np.stack(want)
    # The engine's form: input projections for all steps, then the recurrence.
    tt = _t64
    b = torch.cat((_gate_bias(tt(b_ru[0])), tt(b_c[0])))
    proj = torch.tensor(x) @ torch.cat((tt(W_ru[:E]), tt(W_c[:E])), 1) + b
    proj = proj.unsqueeze(0)
    got = gru_scan(
        proj[..., : 2 * H],
        proj[..., 2 * H :],
        tt(np.repeat(h0, B, 0))[None],
        tt(W_ru[E:])[None],
        tt(W_c[E:])[None],
        clip,
    )[0]
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-12)
    if clip < 1:
        assert (np.abs(want) == clip).any()  # the clip was exercised


def test_gengru_step_matches_numpy():
    rng = np.random.default_rng(1)
    B, n_in, H = 3, 2, 4
    x, h = rng.normal(size=(B, n_in)), rng.normal(size=(B, H))
    Wx_ru, Wh_ru, b_ru = (
        rng.normal(size=(n_in, 2 * H)),
        rng.normal(size=(H, 2 * H)),
        rng.normal(size=(1, 2 * H)),
    )
    Wx_c, Wh_c, b_c = rng.normal(size=(n_in, H)), rng.normal(size=(H, H)), rng.normal(size=(1, H))
    want = _np_gengru(x, h, Wx_ru, Wh_ru, b_ru, Wx_c, Wh_c, b_c, 0.8)
    tt = _t64
    xp = torch.cat((tt(x) @ tt(Wx_ru) + _gate_bias(tt(b_ru[0])), tt(x) @ tt(Wx_c) + tt(b_c[0])), 1)
    got = _gengru_step(xp, tt(h), tt(Wh_ru), tt(Wh_c), 0.8)
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("clip", "h0_scale"), [(5.0, 1.0), (5.0, 8.0), (0.9, 1.0)])
def test_scan_backward_matches_autograd(clip, h0_scale):
    """The hand-written BPTT equals autograd through the step-by-step recurrence."""
    g = torch.Generator().manual_seed(2)
    K, T, B, H = 2, 7, 3, 4

    def mk(*s, sc=1.0):
        return (torch.randn(*s, generator=g, dtype=torch.float64) * sc).requires_grad_()

    ins = (
        mk(K, T, B, 2 * H),
        mk(K, T, B, H),
        mk(K, B, H, sc=h0_scale),
        mk(K, H, 2 * H),
        mk(K, H, H),
    )
    out = gru_scan(*ins, clip)
    ref = gru_scan_reference(*ins, clip)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    w = torch.randn(out.shape, generator=g, dtype=torch.float64)
    got = torch.autograd.grad(out, ins, w)
    want = torch.autograd.grad(ref, ins, w)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-11)


def test_tf_adam_matches_numpy_reference():
    rng = np.random.default_rng(3)
    p0 = rng.normal(size=(3, 2)).astype(np.float32)
    grads = [rng.normal(size=(3, 2)).astype(np.float32) for _ in range(5)]
    lr = 0.01
    # TF1 ApplyAdam, written out in float64.
    m = np.zeros_like(p0, np.float64)
    v = np.zeros_like(p0, np.float64)
    p = p0.astype(np.float64)
    b1p, b2p = 0.9, 0.999
    for gr in grads:
        alpha = lr * np.sqrt(1 - b2p) / (1 - b1p)
        m += (gr - m) * 0.1
        v += (gr * gr - v) * 0.001
        p -= alpha * m / (np.sqrt(v) + 0.1)
        b1p *= 0.9
        b2p *= 0.999
    param = torch.nn.Parameter(torch.tensor(p0))
    opt = TFAdam({"LFADS/w": param})
    for gr in grads:
        opt.step([torch.tensor(gr)], lr)
    np.testing.assert_allclose(param.detach().numpy(), p, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(opt.m[0].numpy(), m, rtol=1e-5, atol=1e-7)
    # After N updates the beta powers hold beta^(N+1), like TF's variables.
    assert opt.beta1_power == pytest.approx(0.9**6, rel=1e-6)
    assert opt.beta2_power == pytest.approx(0.999**6, rel=1e-6)
    # torch.optim.Adam adds eps after the bias correction: a different update.
    q = torch.nn.Parameter(torch.tensor(p0))
    ta = torch.optim.Adam([q], lr=lr, eps=0.1)
    for gr in grads:
        q.grad = torch.tensor(gr)
        ta.step()
    assert np.abs(q.detach().numpy() - p).max() > 1e-4


def test_clip_by_global_norm():
    a, b = torch.full((2,), 3.0), torch.full((1,), 4.0)  # norm sqrt(9+9+16) = sqrt(34)
    n = clip_by_global_norm([a, b], 2.0)
    assert float(n) == pytest.approx(34**0.5)
    assert float(torch.sqrt((a * a).sum() + (b * b).sum())) == pytest.approx(2.0)
    c = torch.ones(3)
    clip_by_global_norm([c], 200.0)
    assert torch.equal(c, torch.ones(3))  # below the threshold: untouched
