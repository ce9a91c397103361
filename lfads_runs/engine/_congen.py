"""The coupled controller -> generator loop as one native kernel (spec §3.9-§3.12).

Per step: controller input (encoder part precomputed for all steps, plus the
dropped-out feedback of the previous factors or rates), controller GRU,
posterior of the inferred input u, generator GRU, dropout and factors. The
kernel runs the loop forward and back-propagates through it; the weight
gradients are then large matrix products here. The per-step autograd version
in :mod:`.model` is the reference (and the path without native kernels).
"""

from __future__ import annotations

import torch

__all__ = ["CongenScan", "congen_forward", "FB_NONE", "FB_FACTORS", "FB_RATES", "FB_MEANS"]

FB_NONE, FB_FACTORS, FB_RATES, FB_MEANS = 0, 1, 2, 3


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(-1, x.shape[-1])


def _mt(ops, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """sum over (t, b) of a^T b for [T, B, m] and [T, B, n] -> [m, n] (native kernel)."""
    return ops.mt(_flat(a), _flat(b))


def congen_forward(
    ops, cfg, cp, w_fb, c0, w_ru_c, w_c_c, w_co, b_co, gp, w_u, g0, w_ru_g, w_c_g, w_fac,
    w_out, b_out, keep_fb, eps, gen_keep, *, train: bool, rep: int = 1,
):  # fmt: skip
    """The native forward loop, arguments in :class:`CongenScan`'s order.

    Returns (generator states, their dropped-out copy, factors, [mu | logvar], u),
    followed with ``train`` by the intermediates the backward pass needs. With ``rep``
    > 1, ``cp`` and ``gp`` have one row per trial standing for ``rep`` consecutive rows
    of the batch (posterior samples); without dropout and ``train`` the dropped-out
    states are the states tensor itself.
    """
    fb_mode, sample, clip = cfg
    return ops.congen_fwd(
        cp, keep_fb, w_fb, c0, w_ru_c, w_c_c, w_co, b_co, eps, sample, gp, w_u, g0, w_ru_g,
        w_c_g, gen_keep, w_fac, fb_mode, w_out, b_out, clip, train, rep,
    )  # fmt: skip


class CongenScan(torch.autograd.Function):
    """Differentiable outputs: factors [T,B,F] and [mu | logvar] [T,B,2U]; the generator
    states, their dropped-out copy and u are returned without gradients."""

    @staticmethod
    def forward(
        ctx,
        ops,
        cfg,
        cp,
        w_fb,
        c0,
        w_ru_c,
        w_c_c,
        w_co,
        b_co,
        gp,
        w_u,
        g0,  # type: ignore[override]
        w_ru_g,
        w_c_g,
        w_fac,
        w_out,
        b_out,
        keep_fb,
        eps,
        gen_keep,
    ):
        out = congen_forward(
            ops, cfg, cp, w_fb, c0, w_ru_c, w_c_c, w_co, b_co, gp, w_u, g0, w_ru_g, w_c_g,
            w_fac, w_out, b_out, keep_fb, eps, gen_keep, train=True,
        )  # fmt: skip
        gs, gd, fac, mv, u, cs, c_gates, c_cands, c_rh, g_gates, g_cands, g_rh, fbk, fbv, lins = out
        ctx.ops, ctx.cfg = ops, cfg
        ctx.save_for_backward(
            w_fb,
            c0,
            w_ru_c,
            w_c_c,
            w_co,
            w_u,
            g0,
            w_ru_g,
            w_c_g,
            w_fac,
            w_out,
            keep_fb,
            eps,
            gen_keep,
            gs,
            gd,
            fac,
            mv,
            u,
            cs,
            c_gates,
            c_cands,
            c_rh,
            g_gates,
            g_cands,
            g_rh,
            fbk,
            fbv,
            lins,
        )
        ctx.mark_non_differentiable(gs, gd, u)
        ctx.set_materialize_grads(False)
        return gs, gd, fac, mv, u

    @staticmethod
    def backward(ctx, _g_gs, _g_gd, g_fac, g_mv, _g_u):  # type: ignore[override]
        (w_fb, c0, w_ru_c, w_c_c, w_co, w_u, g0, w_ru_g, w_c_g, w_fac, w_out, keep_fb, eps,
         gen_keep, gs, gd, fac, mv, u, cs, c_gates, c_cands, c_rh, g_gates, g_cands, g_rh, fbk,
         fbv, lins) = ctx.saved_tensors  # fmt: skip
        fb_mode, sample, clip = ctx.cfg
        ops = ctx.ops
        d_xc, d_xg, d_mv, d_fac, d_lin, d_c0, d_g0, d_f0 = ops.congen_bwd(
            g_fac,
            g_mv,
            keep_fb,
            w_fb,
            c0,
            w_ru_c,
            w_c_c,
            w_co,
            eps,
            sample,
            w_u,
            g0,
            w_ru_g,
            w_c_g,
            gen_keep,
            w_fac,
            fb_mode,
            w_out,
            gs,
            mv,
            cs,
            c_gates,
            c_cands,
            g_gates,
            g_cands,
            fbv,
            lins,
            clip,
        )
        C, G = c0.shape[1], g0.shape[1]
        c_prev = torch.cat((c0.unsqueeze(0), cs[:-1]), 0)
        g_prev = torch.cat((g0.unsqueeze(0), gs[:-1]), 0)
        d_w_ru_c = _mt(ops, c_prev, d_xc[..., : 2 * C])
        d_w_c_c = _mt(ops, c_rh, d_xc[..., 2 * C :])
        d_w_co = _mt(ops, cs, d_mv)
        d_b_co = d_mv.sum((0, 1))
        d_w_u = _mt(ops, u, d_xg)
        d_w_ru_g = _mt(ops, g_prev, d_xg[..., : 2 * G])
        d_w_c_g = _mt(ops, g_rh, d_xg[..., 2 * G :])
        d_w_fac = _mt(ops, gd, d_fac)
        d_w_fb = d_w_out = d_b_out = None
        if fb_mode != FB_NONE:
            d_w_fb = _mt(ops, fbk, d_xc)
            d_w_fac = d_w_fac + g0.t() @ d_f0
            d_g0 = d_g0 + d_f0 @ w_fac.t()
            if fb_mode in (FB_RATES, FB_MEANS):
                f_prev = torch.cat(((g0 @ w_fac).unsqueeze(0), fac[:-1]), 0)
                d_w_out = _mt(ops, f_prev, d_lin)
                d_b_out = d_lin.sum((0, 1))
        return (
            None,
            None,
            d_xc,
            d_w_fb,
            d_c0,
            d_w_ru_c,
            d_w_c_c,
            d_w_co,
            d_b_co,
            d_xg,
            d_w_u,
            d_g0,
            d_w_ru_g,
            d_w_c_g,
            d_w_fac,
            d_w_out,
            d_b_out,
            None,
            None,
            None,
        )
