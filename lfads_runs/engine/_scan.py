"""GRU recurrences over whole sequences, with hand-written backward passes.

Both LFADS cells (spec §2) reduce to the same recurrence once the input part
of every gate is known::

    [r^ | u^]_t = p_ru[t] + h_{t-1} W_ru        (p_ru = x W_x + b, forget bias included)
    c_t         = tanh(p_c[t] + (r_t * h_{t-1}) W_c)
    h_t         = clip(u_t * h_{t-1} + (1 - u_t) * c_t, clip_value)

with r = sigmoid(r^), u = sigmoid(u^). :func:`gru_layer` runs K recurrences
over one input sequence (some reading it backwards, as the reverse encoders
do). On the CPU with the native kernels (:mod:`._ext`) the input projection is
fused into the step loop and the weight gradients are summed step by step, so
no [K, T, B, 3H] projection or gradient goes through memory. Elsewhere it
computes the projections for all steps at once and runs :class:`GruScan`, the
torch implementation: K recurrences side by side (batched matrix products) that
back-propagate through time themselves, the weight gradients being single large
products over all steps. Autograd over a per-step Python loop would spend most
of its time on bookkeeping rather than arithmetic.

Two exact shortcuts:

- tanh(z) = 2 sigmoid(2z) - 1 in the torch path (torch's CPU tanh is several
  times slower than its sigmoid).
- The clip can only act on the first step: h_t is a convex combination of
  h_{t-1} and c_t with |c_t| < 1, so once |h| <= clip (clip >= 1) it stays there.
  Later steps are clipped only when clip < 1.
"""

from __future__ import annotations

import torch

from ._ext import native_for

__all__ = ["GruScan", "gru_layer", "gru_scan", "gru_scan_reference", "layer_projections"]


def _clip_all_steps(clip: float) -> bool:
    return clip < 1.0


def _forward_torch(proj, h0, w_ru, w_c, clip, train):
    """Layouts: hs [K,T,B,H], gates [T,K,B,2H], cands [T,K,B,H], rhs [K,T,B,H]."""
    H = proj.shape[-1] // 3
    p_ru, p_c = proj[..., : 2 * H], proj[..., 2 * H :]
    K, T, B, _ = p_c.shape
    neg1 = p_c.new_full((), -1.0)
    clip_all = _clip_all_steps(clip)
    hs = p_c.new_empty(K, T, B, H)
    gates = p_c.new_empty(T if train else 1, K, B, 2 * H)
    cands = p_c.new_empty(T if train else 1, K, B, H)
    rhs = p_c.new_empty(K, T, B, H) if train else None
    h = h0
    for t in range(T):
        i = t if train else 0
        g = torch.baddbmm(p_ru[:, t], h, w_ru, out=gates[i]).sigmoid_()
        rh = torch.mul(g[..., :H], h, out=rhs[:, t]) if train else g[..., :H] * h
        # tanh(z) = 2 sigmoid(2z) - 1
        c = torch.baddbmm(p_c[:, t], rh, w_c, beta=2.0, alpha=2.0, out=cands[i]).sigmoid_()
        torch.add(neg1, c, alpha=2.0, out=c)
        h = torch.lerp(c, h, g[..., H:], out=hs[:, t])
        if t == 0 or clip_all:
            h.clamp_(-clip, clip)
    return hs, gates, cands, rhs


def _backward_torch(grad_out, h0, w_ru, w_c, hs, gates, cands, rhs, clip, need_w):
    K, T, B, H = hs.shape
    clip_all = _clip_all_steps(clip)
    w_ru_t = w_ru.transpose(1, 2)
    w_c_t = w_c.transpose(1, 2)
    d_proj = hs.new_empty(K, T, B, 3 * H)
    d_ru, d_c = d_proj[..., : 2 * H], d_proj[..., 2 * H :]
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
        x = torch.cat((drh * h_prev, dh * (h_prev - c)), -1)
        dru = torch.mul(x, g * (1.0 - g), out=d_ru[:, t])
        carry = torch.baddbmm(torch.addcmul(du, drh, r), dru, w_ru_t)
    if not need_w:
        return d_proj, carry, None, None
    d_w_ru = torch.bmm(h0.transpose(1, 2), d_ru[:, 0])
    if T > 1:
        hp = hs[:, :-1].reshape(K, (T - 1) * B, H).transpose(1, 2)
        d_w_ru = d_w_ru + torch.bmm(hp, d_ru[:, 1:].reshape(K, (T - 1) * B, 2 * H))
    d_w_c = torch.bmm(rhs.reshape(K, T * B, H).transpose(1, 2), d_c.reshape(K, T * B, H))
    return d_proj, carry, d_w_ru, d_w_c


class GruScan(torch.autograd.Function):
    """K GRU recurrences of H units over T steps (see the module docstring).

    Inputs: ``proj`` [K, T, B, 3H], the input parts of r, u and the candidate
    (biases and the +1 forget bias included), ``h0`` [K, B, H], ``w_ru`` [K, H, 2H],
    ``w_c`` [K, H, H]; ``clip`` a float. Outputs: the states of each recurrence
    ([T, B, H] each, K outputs), then the final states [K, B, H].
    """

    @staticmethod
    def forward(ctx, proj, h0, w_ru, w_c, clip):  # type: ignore[override]
        hs, gates, cands, rhs = _forward_torch(proj, h0, w_ru, w_c, clip, True)
        ctx.clip = clip
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(h0, w_ru, w_c, hs, gates, cands, rhs)
        last = hs[:, -1].clone()
        return (*hs.unbind(0), last)

    @staticmethod
    def backward(ctx, *grads):  # type: ignore[override]
        h0, w_ru, w_c, hs, gates, cands, rhs = ctx.saved_tensors
        K, T, B, H = hs.shape
        g_states, g_last = list(grads[:K]), grads[K]
        need_w = ctx.needs_input_grad[2] or ctx.needs_input_grad[3]
        grad_out = torch.stack([hs.new_zeros(T, B, H) if g is None else g for g in g_states])
        if g_last is not None:
            grad_out[:, -1] += g_last
        d_proj, d_h0, d_w_ru, d_w_c = _backward_torch(
            grad_out, h0, w_ru, w_c, hs, gates, cands, rhs, ctx.clip, need_w
        )
        return d_proj, d_h0, d_w_ru, d_w_c, None


class GruLayer(torch.autograd.Function):
    """The native fused layer (see :func:`gru_layer`); outputs as :class:`GruScan`."""

    @staticmethod
    def forward(ctx, ops, rev, clip, x, w_ru, w_c, b, h0):  # type: ignore[override]
        hs, gates, cands = ops.gru_layer_fwd(x, rev, w_ru, w_c, b, h0, clip, True)
        ctx.ops, ctx.rev, ctx.clip = ops, rev, clip
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, w_ru, w_c, b, h0, hs, gates, cands)
        return (*hs.unbind(0), hs[:, -1].clone())

    @staticmethod
    def backward(ctx, *grads):  # type: ignore[override]
        x, w_ru, w_c, b, h0, hs, gates, cands = ctx.saved_tensors
        K = hs.shape[0]
        need_x = ctx.needs_input_grad[3]
        out = ctx.ops.gru_layer_bwd(
            list(grads[:K]), grads[K], x, ctx.rev, w_ru, w_c, b, h0, hs, gates, cands,
            ctx.clip, need_x,
        )  # fmt: skip
        d_h0, d_w_ru, d_w_c, d_b = out[:4]
        return None, None, None, out[4] if need_x else None, d_w_ru, d_w_c, d_b, d_h0


def gru_layer(
    x: torch.Tensor,
    reverse: list[bool],
    w_ru: torch.Tensor,
    w_c: torch.Tensor,
    b: torch.Tensor,
    h0: torch.Tensor,
    clip: float,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """K GRU recurrences of H units over one input sequence, input projections included.

    ``x`` [T, B, E] (E may be 0); recurrence k reads it backwards when
    ``reverse[k]``. ``w_ru`` [K, E+H, 2H] and ``w_c`` [K, E+H, H] are the cells'
    [x, h] matrices (the TF variables, or x and h parts stacked), ``b`` [K, 3H]
    the biases of r, u (forget bias included) and the candidate, ``h0`` [K, B, H].

    Returns
    -------
    states : list of K tensors [T, B, H], in step order (a reversed recurrence's
        step t reads x[T-1-t])
    last : tensor [K, B, H], the final states
    """
    clip = float(clip)
    rev = [int(bool(r)) for r in reverse]
    E = x.shape[-1]
    ops = native_for(x)
    if ops is not None:
        args = (x, w_ru, w_c, b, h0)
        if torch.is_grad_enabled() and any(t.requires_grad for t in args):
            *states, last = GruLayer.apply(ops, rev, clip, *args)
            return states, last
        with torch.no_grad():
            hs = ops.gru_layer_fwd(x, rev, w_ru, w_c, b, h0, clip, False)[0]
        return list(hs.unbind(0)), hs[:, -1]
    proj = layer_projections(x, rev, w_ru, w_c, b)
    return gru_scan(proj, h0, w_ru[:, E:], w_c[:, E:], clip)


def layer_projections(
    x: torch.Tensor, reverse: list[bool], w_ru: torch.Tensor, w_c: torch.Tensor, b: torch.Tensor
) -> torch.Tensor:
    """The input parts of :func:`gru_layer`'s gates for all steps: [K, T, B, 3H] (GruScan's
    ``proj``), each recurrence's steps in its own reading order."""
    K, (T, B, E) = len(reverse), x.shape
    xs = torch.stack([x.flip(0) if r else x for r in reverse]).reshape(K, T * B, E)
    w_x = torch.cat((w_ru[:, :E], w_c[:, :E]), 2)
    return torch.baddbmm(b.unsqueeze(1), xs, w_x).view(K, T, B, -1)


def gru_scan(
    proj: torch.Tensor,
    h0: torch.Tensor,
    w_ru: torch.Tensor,
    w_c: torch.Tensor,
    clip: float,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Run K GRU recurrences (see :class:`GruScan`).

    Returns
    -------
    states : list of K tensors [T, B, H]
    last : tensor [K, B, H], the final states (cheaper to back-propagate through
        than ``states[k][-1]`` when only they are used)
    """
    clip = float(clip)
    args = (proj, h0, w_ru, w_c)
    if torch.is_grad_enabled() and any(x.requires_grad for x in args):
        *states, last = GruScan.apply(*args, clip)
        return states, last
    with torch.no_grad():
        hs = _forward_torch(proj, h0, w_ru, w_c, clip, False)[0]
    return list(hs.unbind(0)), hs[:, -1]


def gru_scan_reference(
    proj: torch.Tensor,
    h0: torch.Tensor,
    w_ru: torch.Tensor,
    w_c: torch.Tensor,
    clip: float,
) -> torch.Tensor:
    """The recurrence written step by step for autograd, exactly as spec §2 (tests).

    Returns the states [K, T, B, H].
    """
    H = h0.shape[-1]
    h = h0
    hs = []
    for t in range(proj.shape[1]):
        ru = torch.sigmoid(proj[:, t, :, : 2 * H] + torch.bmm(h, w_ru))
        r, u = ru[..., :H], ru[..., H:]
        c = torch.tanh(proj[:, t, :, 2 * H :] + torch.bmm(r * h, w_c))
        h = torch.clamp(u * h + (1 - u) * c, -clip, clip)
        hs.append(h)
    return torch.stack(hs, 1)
