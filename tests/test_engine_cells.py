"""Engine building blocks against hand-computed numpy: GRU cells, the fused scan, TF Adam."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lfads_runs.engine._scan import gru_scan, gru_scan_reference  # noqa: E402
from lfads_runs.engine.model import _gate_bias, _gengru_step  # noqa: E402
from lfads_runs.engine.optim import TFAdam, clip_by_global_norm, flat_gradients  # noqa: E402


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
    states, last = gru_scan(
        proj,
        tt(np.repeat(h0, B, 0))[None],
        tt(W_ru[E:])[None],
        tt(W_c[E:])[None],
        clip,
    )
    np.testing.assert_allclose(states[0].numpy(), want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(last[0].numpy(), want[-1], rtol=0, atol=1e-12)
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


def _scan_inputs(K, T, B, H, h0_scale, dtype, seed=2):
    g = torch.Generator().manual_seed(seed)

    def mk(*s, sc=1.0):
        return (torch.randn(*s, generator=g, dtype=dtype) * sc).requires_grad_()

    ins = (
        mk(K, T, B, 3 * H),
        mk(K, B, H, sc=h0_scale),
        mk(K, H, 2 * H),
        mk(K, H, H),
    )
    w = torch.randn(K, T, B, H, generator=g, dtype=dtype)
    w_last = torch.randn(K, B, H, generator=g, dtype=dtype)
    return ins, w, w_last


def _check_scan(ins, w, w_last, clip, atol_fwd, atol_bwd):
    """States and gradients (through all states and through the final ones) vs autograd."""
    states, last = gru_scan(*ins, clip)
    ref = gru_scan_reference(*[x.detach().double().requires_grad_() for x in ins], clip)
    got_all = torch.stack(states)
    torch.testing.assert_close(got_all.double(), ref, rtol=0, atol=atol_fwd)
    torch.testing.assert_close(last.double(), ref[:, -1], rtol=0, atol=atol_fwd)
    # Loss uses the states of recurrence 0 only plus every final state: partial gradients.
    loss = (states[0] * w[0]).sum() + (last * w_last).sum()
    got = torch.autograd.grad(loss, ins)
    ins64 = [x.detach().double().requires_grad_() for x in ins]
    ref = gru_scan_reference(*ins64, clip)
    loss_ref = (ref[0] * w[0].double()).sum() + (ref[:, -1] * w_last.double()).sum()
    want = torch.autograd.grad(loss_ref, ins64)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a.double(), b, rtol=0, atol=atol_bwd)


@pytest.mark.parametrize(("clip", "h0_scale"), [(5.0, 1.0), (5.0, 8.0), (0.9, 1.0)])
def test_scan_backward_torch_path_matches_autograd(clip, h0_scale):
    """The hand-written BPTT (pure torch, float64) equals autograd through the recurrence."""
    from lfads_runs.engine import _ext

    _ext.set_native_enabled(False)
    try:
        ins, w, w_last = _scan_inputs(2, 7, 3, 4, h0_scale, torch.float64)
        _check_scan(ins, w, w_last, clip, 1e-12, 1e-11)
    finally:
        _ext.set_native_enabled(None)


def test_noise_source_masks_normals_and_state():
    from lfads_runs.engine._rng import NoiseSource

    for native in (None, False):
        a = NoiseSource(5, use_native=native)
        m = a.keep_mask((200_000,), 0.9, torch.device("cpu"))
        assert torch.unique(m).tolist() == pytest.approx([0.0, 1 / 0.9])
        assert float((m > 0).float().mean()) == pytest.approx(0.9, abs=0.005)
        info, st = a.state()
        x = a.normal((100_000,), torch.device("cpu"))
        assert abs(float(x.mean())) < 0.02 and float(x.std()) == pytest.approx(1.0, abs=0.02)
        b = NoiseSource(5, use_native=native)
        b.set_state(info, st)  # resuming reproduces the stream
        assert torch.equal(b.normal((100_000,), torch.device("cpu")), x)
        c = NoiseSource(6, use_native=native)
        assert not torch.equal(c.keep_mask((1000,), 0.5, torch.device("cpu")), m[:1000])


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


def test_tf_adam_several_variables_flat_and_unused():
    """Moments of all variables in one flat tensor: each variable gets its own update, an
    unused one (None gradient) counts as zero, and flat gradients give the same step."""
    rng = np.random.default_rng(4)
    shapes = [(3, 2), (1, 5), (4,)]
    p0 = [rng.normal(size=s).astype(np.float32) for s in shapes]
    grads = [[rng.normal(size=s).astype(np.float32) for s in shapes] for _ in range(4)]
    for gs in grads:
        gs[1] = None if gs is grads[0] else gs[1]  # unused in the first step only
    want = []
    for k, v0 in enumerate(p0):  # the one-variable update, written out in float64
        m = np.zeros(v0.shape)
        v = np.zeros(v0.shape)
        p = v0.astype(np.float64)
        b1p, b2p = 0.9, 0.999
        for gs in grads:
            gr = np.zeros(v0.shape) if gs[k] is None else gs[k]
            alpha = 0.01 * np.sqrt(1 - b2p) / (1 - b1p)
            m += (gr - m) * 0.1
            v += (gr * gr - v) * 0.001
            p -= alpha * m / (np.sqrt(v) + 0.1)
            b1p *= 0.9
            b2p *= 0.999
        want.append((p, m))
    for flat in (False, True):
        params = {f"v{k}": torch.nn.Parameter(torch.tensor(v)) for k, v in enumerate(p0)}
        opt = TFAdam(params)
        for gs in grads:
            tg = [None if g is None else torch.tensor(g) for g in gs]
            opt.step(flat_gradients(tg, opt.params) if flat else tg, 0.01)
        for k, (p, m) in enumerate(want):
            got = params[f"v{k}"].detach().numpy()
            np.testing.assert_allclose(got, p, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(opt.slots()[f"v{k}"][0].numpy(), m, rtol=1e-5, atol=1e-7)


def test_clip_by_global_norm():
    a, b = torch.full((2,), 3.0), torch.full((1,), 4.0)  # norm sqrt(9+9+16) = sqrt(34)
    n = clip_by_global_norm([a, b], 2.0)
    assert float(n) == pytest.approx(34**0.5)
    assert float(torch.sqrt((a * a).sum() + (b * b).sum())) == pytest.approx(2.0)
    c = torch.ones(3)
    clip_by_global_norm([c], 200.0)
    assert torch.equal(c, torch.ones(3))  # below the threshold: untouched
    # All gradients flat in one tensor: the same global norm and scaling.
    flat = flat_gradients([torch.full((2,), 3.0), None, torch.full((1,), 4.0)], [a, c, b])
    assert flat.shape == (6,) and float(clip_by_global_norm([flat], 2.0)) == pytest.approx(34**0.5)
    assert float(torch.linalg.vector_norm(flat)) == pytest.approx(2.0)


def test_poisson_log_lik_node_matches_the_expression_and_its_gradient():
    from lfads_runs.engine._loglik import poisson_log_lik

    g = torch.Generator().manual_seed(1)
    lin = (torch.randn(5, 3, 4, generator=g, dtype=torch.float64) * 0.5).requires_grad_()
    x = torch.poisson(torch.full((5, 3, 4), 2.0, dtype=torch.float64), generator=g)
    got = poisson_log_lik(lin, x)
    want = (x * lin - torch.exp(lin)).sum((0, 2))
    torch.testing.assert_close(got, want)
    assert torch.autograd.gradcheck(lambda v: poisson_log_lik(v, x), (lin,))
    with torch.no_grad():  # the plain expression without gradients
        torch.testing.assert_close(poisson_log_lik(lin, x), want)
