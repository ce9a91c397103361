"""TensorFlow 1's Adam and global-norm gradient clipping (spec §4).

``torch.optim.Adam`` adds epsilon after the bias correction; TF1 adds it to the
uncorrected second moment and folds the correction into the step size::

    lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)
    m   += (g - m) (1 - beta1);   v += (g^2 - v)(1 - beta2)
    var -= lr_t m / (sqrt(v) + eps)

With LFADS's eps = 0.1 the two differ a lot, so this is the TF form. The beta
powers are kept as float32 values like TF's ``beta1_power``/``beta2_power``
variables: they hold beta^t for the next update.

The moments of all variables live in one flat tensor each and a step works on
the gradients concatenated (:func:`flat_gradients`): a handful of operations on
~10^5 numbers instead of eight per variable (dozens of variables), whose
per-call overhead was a tenth of a small model's training step.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

__all__ = ["TFAdam", "clip_by_global_norm", "flat_gradients", "BETA1", "BETA2", "EPSILON"]

BETA1 = 0.9
BETA2 = 0.999
EPSILON = 0.1


def flat_gradients(
    grads: list[torch.Tensor | None] | tuple[torch.Tensor | None, ...],
    params: list[torch.Tensor],
) -> torch.Tensor:
    """The gradients of ``params`` as one flat float32 tensor; None (unused) counts as 0."""
    if not params:
        return torch.zeros(0)
    return torch.cat(
        [
            (p.new_zeros(p.numel()) if g is None else g.reshape(-1))
            for g, p in zip(grads, params, strict=True)
        ]
    )


def clip_by_global_norm(grads: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale ``grads`` in place by max_norm / max(norm, max_norm); returns the global norm."""
    if not grads:
        return torch.zeros(())
    if len(grads) == 1:  # flat gradients: their norm is the global norm
        total = torch.linalg.vector_norm(grads[0])
        grads[0].mul_(max_norm / torch.clamp(total, min=max_norm))
        return total
    norms = torch._foreach_norm(grads)
    total = torch.linalg.vector_norm(torch.stack(norms))
    scale = max_norm / torch.clamp(total, min=max_norm)
    torch._foreach_mul_(grads, scale)
    return total


class TFAdam:
    """Adam exactly as ``tf.train.AdamOptimizer(lr, 0.9, 0.999, 0.1)`` applies it.

    Parameters
    ----------
    params
        TF name -> parameter, the variables that get updated (and have slots).
    """

    def __init__(self, params: Mapping[str, torch.Tensor]) -> None:
        self.names = list(params)
        self.params = [params[n] for n in self.names]
        self._sizes = [p.numel() for p in self.params]
        device = self.params[0].device if self.params else None
        self._m = torch.zeros(sum(self._sizes), device=device)
        self._v = torch.zeros(sum(self._sizes), device=device)
        #: Per-variable views of the flat moments.
        self.m = self._views(self._m)
        self.v = self._views(self._v)
        self.beta1_power = np.float32(BETA1)
        self.beta2_power = np.float32(BETA2)

    def _views(self, flat: torch.Tensor) -> list[torch.Tensor]:
        return [
            part.view(p.shape) for part, p in zip(flat.split(self._sizes), self.params, strict=True)
        ]

    def step(self, grads: list[torch.Tensor] | torch.Tensor, lr: float | np.float32) -> None:
        """Apply one update with learning rate ``lr`` (float32 semantics like TF).

        ``grads``: one per variable, or all of them flat (:func:`flat_gradients`).
        """
        lr32 = np.float32(lr)
        one = np.float32(1.0)
        alpha = float(
            lr32 * np.sqrt(one - self.beta2_power, dtype=np.float32) / (one - self.beta1_power)
        )
        g = grads if isinstance(grads, torch.Tensor) else flat_gradients(grads, self.params)
        with torch.no_grad():
            self._m.lerp_(g, 1.0 - BETA1)
            self._v.lerp_(g * g, 1.0 - BETA2)
            denom = self._v.sqrt().add_(EPSILON)
            # p + (-alpha m) / denom, the order of addcdiv(p, m, denom, value=-alpha).
            step = torch.mul(self._m, -alpha).div_(denom)
            torch._foreach_add_(self.params, self._views(step))
        self.beta1_power = np.float32(self.beta1_power * np.float32(BETA1))
        self.beta2_power = np.float32(self.beta2_power * np.float32(BETA2))

    # ------------------------------------------------------------ state I/O
    def slots(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """TF name -> (m, v)."""
        return {n: (m, v) for n, m, v in zip(self.names, self.m, self.v, strict=True)}

    def load_slots(self, slots: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> list[str]:
        """Set m and v by TF name; returns the names without slots in ``slots`` (left at 0)."""
        missing = []
        with torch.no_grad():
            for n, m, v in zip(self.names, self.m, self.v, strict=True):
                if n not in slots:
                    missing.append(n)
                    m.zero_()
                    v.zero_()
                    continue
                sm, sv = slots[n]
                m.copy_(torch.from_numpy(np.ascontiguousarray(sm, dtype=np.float32)))
                v.copy_(torch.from_numpy(np.ascontiguousarray(sv, dtype=np.float32)))
        return missing
