"""The Poisson log-likelihood of the read-out as one autograd node (spec §3.13).

Per trial, sum over steps and neurons of ``x lin - exp(lin)``: autograd over the
elementwise expression keeps several [T, B, D] temporaries and back-propagates
through four nodes (product, exp, difference, sum); here exp(lin) is computed
once, saved, and the gradient ``(x - exp(lin)) g`` is two operations.
"""

from __future__ import annotations

import torch

__all__ = ["poisson_log_lik"]


class _PoissonLogLik(torch.autograd.Function):
    @staticmethod
    def forward(ctx, lin, x):  # type: ignore[override]
        e = torch.exp(lin)
        ll = torch.mul(x, lin).sum((0, 2)) - e.sum((0, 2))
        ctx.save_for_backward(e, x)
        return ll

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        e, x = ctx.saved_tensors
        d_lin = torch.sub(x, e).mul_(g.view(1, -1, 1))
        return d_lin, None


def poisson_log_lik(lin: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """sum over (t, d) of x lin - exp(lin) per trial [B], for ``lin``, ``x`` [T, B, D].

    ``x`` (the data) gets no gradient.
    """
    if torch.is_grad_enabled() and lin.requires_grad:
        return _PoissonLogLik.apply(lin, x)
    return (x * lin - torch.exp(lin)).sum((0, 2))
