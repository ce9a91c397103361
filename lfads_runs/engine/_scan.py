"""GRU recurrences over whole sequences, with a hand-written backward pass.

Both LFADS cells (spec §2) reduce to the same recurrence once the input part
of every gate has been computed for all time steps at once::

    [r^ | u^]_t = p_ru[t] + h_{t-1} W_ru        (p_ru = x W_x + b, forget bias included)
    c_t         = tanh(p_c[t] + (r_t * h_{t-1}) W_c)
    h_t         = clip(u_t * h_{t-1} + (1 - u_t) * c_t, clip_value)

with r = sigmoid(r^), u = sigmoid(u^). Only the recurrent products are
sequential. :class:`GruScan` runs K independent recurrences of the same size
side by side (batched matrix products, so the forward and reverse encoders
run together) and back-propagates through time with a few operations per step;
the weight gradients are single large matrix products over all steps.
Autograd over a per-step Python loop would spend most of its time on
bookkeeping rather than arithmetic.

Two exact shortcuts keep the per-step work small:

- tanh(z) is computed as 2 sigmoid(2z) - 1 (torch's CPU tanh is several times
  slower than its sigmoid); the factor 2 is folded into the candidate weights.
- The clip can only act on the first step: h_t is a convex combination of
  h_{t-1} and c_t with |c_t| < 1, so once |h| <= clip (clip >= 1) it stays there.
  Later steps are clipped only when clip < 1.
"""

from __future__ import annotations

import torch

__all__ = ["GruScan", "gru_scan", "gru_scan_reference"]


def _clip_all_steps(clip: float) -> bool:
    return clip < 1.0


class GruScan(torch.autograd.Function):
    """K GRU recurrences of H units over T steps (see the module docstring).

    Inputs: ``p_ru`` [K, T, B, 2H] and ``p_c`` [K, T, B, H] (input parts of the
    gates and of the candidate, biases and the +1 forget bias included),
    ``h0`` [K, B, H], ``w_ru`` [K, H, 2H], ``w_c`` [K, H, H]; ``clip`` a float.
    Output: the states [K, T, B, H].
    """

    @staticmethod
    def forward(ctx, p_ru, p_c, h0, w_ru, w_c, clip):  # type: ignore[override]
        K, T, B, H = p_c.shape
        neg1 = p_c.new_full((), -1.0)
        clip_all = _clip_all_steps(clip)
        hs = p_c.new_empty(K, T, B, H)
        rhs = p_c.new_empty(K, T, B, H)
        gates = p_c.new_empty(T, K, B, 2 * H)
        cands = p_c.new_empty(T, K, B, H)
        h = h0
        for t in range(T):
            g = torch.baddbmm(p_ru[:, t], h, w_ru, out=gates[t]).sigmoid_()
            rh = torch.mul(g[..., :H], h, out=rhs[:, t])
            # tanh(z) = 2 sigmoid(2z) - 1
            c = torch.baddbmm(p_c[:, t], rh, w_c, beta=2.0, alpha=2.0, out=cands[t]).sigmoid_()
            torch.add(neg1, c, alpha=2.0, out=c)
            h = torch.lerp(c, h, g[..., H:], out=hs[:, t])
            if t == 0 or clip_all:
                h.clamp_(-clip, clip)
        ctx.clip = clip
        ctx.save_for_backward(h0, w_ru, w_c, hs, rhs, gates, cands)
        return hs

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        h0, w_ru, w_c, hs, rhs, gates, cands = ctx.saved_tensors
        K, T, B, H = hs.shape
        clip = ctx.clip
        clip_all = _clip_all_steps(clip)
        w_ru_t = w_ru.transpose(1, 2)
        w_c_t = w_c.transpose(1, 2)
        d_ru = hs.new_empty(K, T, B, 2 * H)
        d_c = hs.new_empty(K, T, B, H)
        one = hs.new_ones(())
        carry = None
        for t in range(T - 1, -1, -1):
            dh = grad_out[:, t] if carry is None else grad_out[:, t] + carry
            if t == 0 or clip_all:
                dh = dh * (hs[:, t].abs() < clip)
            h_prev = hs[:, t - 1] if t > 0 else h0
            g = gates[t]
            r, u = g[..., :H], g[..., H:]
            c = cands[t]
            du = dh * u  # also the direct path dh -> h_prev
            # candidate pre-activation: dh (1 - u)(1 - c^2)
            dzc = torch.mul(dh - du, torch.addcmul(one, c, c, value=-1.0), out=d_c[:, t])
            drh = torch.bmm(dzc, w_c_t)
            # [r | u] pre-activations: [drh h_prev, dh (h_prev - c)] * g (1 - g)
            gg = g * (1.0 - g)
            x = torch.cat((drh * h_prev, dh * (h_prev - c)), -1)
            dru = torch.mul(x, gg, out=d_ru[:, t])
            carry = torch.baddbmm(torch.addcmul(du, drh, r), dru, w_ru_t)
        d_w_ru = d_w_c = None
        if ctx.needs_input_grad[3]:
            # Weight gradients: one product over all steps (rows are (t, b) pairs).
            d_w_ru = torch.bmm(h0.transpose(1, 2), d_ru[:, 0])
            if T > 1:
                hp = hs[:, :-1].reshape(K, (T - 1) * B, H).transpose(1, 2)
                d_w_ru += torch.bmm(hp, d_ru[:, 1:].reshape(K, (T - 1) * B, 2 * H))
        if ctx.needs_input_grad[4]:
            d_w_c = torch.bmm(rhs.reshape(K, T * B, H).transpose(1, 2), d_c.reshape(K, T * B, H))
        return d_ru, d_c, carry, d_w_ru, d_w_c, None


def _scan_no_grad(p_ru, p_c, h0, w_ru, w_c, clip):
    K, T, B, H = p_c.shape
    neg1 = p_c.new_full((), -1.0)
    clip_all = _clip_all_steps(clip)
    hs = p_c.new_empty(K, T, B, H)
    h = h0
    for t in range(T):
        g = torch.baddbmm(p_ru[:, t], h, w_ru).sigmoid_()
        c = torch.baddbmm(p_c[:, t], g[..., :H] * h, w_c, beta=2.0, alpha=2.0).sigmoid_()
        c = torch.add(neg1, c, alpha=2.0)
        h = torch.lerp(c, h, g[..., H:], out=hs[:, t])
        if t == 0 or clip_all:
            h.clamp_(-clip, clip)
    return hs


def gru_scan(
    p_ru: torch.Tensor,
    p_c: torch.Tensor,
    h0: torch.Tensor,
    w_ru: torch.Tensor,
    w_c: torch.Tensor,
    clip: float,
) -> torch.Tensor:
    """Run K GRU recurrences (see :class:`GruScan`); returns the states [K, T, B, H]."""
    clip = float(clip)
    args = (p_ru, p_c, h0, w_ru, w_c)
    if torch.is_grad_enabled() and any(x.requires_grad for x in args):
        return GruScan.apply(*args, clip)
    return _scan_no_grad(*args, clip)


def gru_scan_reference(
    p_ru: torch.Tensor,
    p_c: torch.Tensor,
    h0: torch.Tensor,
    w_ru: torch.Tensor,
    w_c: torch.Tensor,
    clip: float,
) -> torch.Tensor:
    """The recurrence written step by step for autograd, exactly as spec §2 (tests)."""
    H = h0.shape[-1]
    h = h0
    hs = []
    for t in range(p_c.shape[1]):
        ru = torch.sigmoid(p_ru[:, t] + torch.bmm(h, w_ru))
        r, u = ru[..., :H], ru[..., H:]
        c = torch.tanh(p_c[:, t] + torch.bmm(r * h, w_c))
        h = torch.clamp(u * h + (1 - u) * c, -clip, clip)
        hs.append(h)
    return torch.stack(hs, 1)
