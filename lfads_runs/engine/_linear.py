"""Batched input projections ``b[k] + x[k] @ w[k]`` (the encoders' input parts of the gates).

The native kernels compute the projection in one pass that writes each output
once, and its backward (``dx``, ``dw``, ``db``) in one pass over the output
gradient; ``torch.baddbmm`` fills the output with the broadcast bias first and
autograd reads the gradient three times, which on these tall, narrow
products ([K, T*B, E] x [K, E, 3H]) costs more than the arithmetic.
"""

from __future__ import annotations

import torch

from ._ext import native

__all__ = ["batched_linear"]


class _BatchedLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, ops, x, w, b):  # type: ignore[override]
        ctx.ops = ops
        ctx.save_for_backward(x, w)
        return ops.lin_fwd(x, w, b)

    @staticmethod
    def backward(ctx, d):  # type: ignore[override]
        x, w = ctx.saved_tensors
        need_x = ctx.needs_input_grad[1]
        out = ctx.ops.lin_bwd(d, x, w, need_x)
        dx, dw, db = out if need_x else (None, *out)
        return None, dx, dw, db


def batched_linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``b[k] + x[k] @ w[k]`` for x [K, R, E], w [K, E, N], b [K, N] -> [K, R, N]."""
    ops = native() if x.device.type == "cpu" and x.dtype == torch.float32 else None
    if ops is None:
        return torch.baddbmm(b.unsqueeze(1), x, w)
    if torch.is_grad_enabled() and (x.requires_grad or w.requires_grad or b.requires_grad):
        return _BatchedLinear.apply(ops, x, w, b)
    with torch.no_grad():
        return ops.lin_fwd(x, w, b)
