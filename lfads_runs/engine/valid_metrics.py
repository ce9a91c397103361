"""Per-epoch selection metrics of the validation pass (docs/autolfads.md).

The validation pass (keep_prob 1, sampling on, no coordinated dropout) gives
log p(x | z) per element; this module splits it into regions and reports, over
all validation trials of all datasets:

``valid_nll_heldin``
    mean Poisson (or Gaussian) NLL per element of the held-in neurons in the
    encoded bins, sample-validation elements excluded.
``valid_bps_heldin``, ``valid_cobps``, ``valid_fpbps``
    bits per spike (Poisson only) of the held-in elements, the held-out neurons
    (co-smoothing) and the forward-prediction bins, against NLB's null model
    (each neuron's mean count over the region's validation elements).
``valid_nll_heldout``, ``valid_nll_fp``, ``valid_nll_sv``
    NLL per element of held-out neurons, forward bins, and the elements held
    back by sample validation (when present).
``smth_valid_nll_heldin``
    exponential smoothing of ``valid_nll_heldin`` (weight :data:`SMOOTHING` on the
    previous value), the metric tune_tf2's PBT ranks by.
``selection_cost``
    what the lowest-validation-error checkpoint minimises: ``valid_nll_sv`` when
    ``sv_rate`` > 0, else LFADS's ``total_valid``.

Values come from one posterior sample per trial (the validation pass), so they
are noisier than metrics of posterior-mean rates (``lfads-runs evaluate``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

from ..model_spec import ModelSpec
from ..results.nlb_metrics import poisson_nll
from .data import EngineDataset

__all__ = ["ValidMetrics", "SMOOTHING", "smooth"]

#: Weight of the previous value in the smoothed metrics: lfads_tf2 computes
#: ``0.3 * previous + 0.7 * new`` (coefficient 0.7 on the new epoch), so the
#: ranking follows the latest epochs instead of lagging several epochs behind.
SMOOTHING = 0.3
_REGIONS = ("heldin", "heldout", "fp", "sv")
_BPS_NAMES = {"heldin": "valid_bps_heldin", "heldout": "valid_cobps", "fp": "valid_fpbps"}


def smooth(previous: float | None, value: float) -> float:
    """One step of the exponential smoothing (the first value is taken as is)."""
    return value if previous is None else SMOOTHING * previous + (1.0 - SMOOTHING) * value


class _DatasetRegions:
    """Region masks, element counts and null-model NLLs of one dataset's validation split."""

    def __init__(
        self, spec: ModelSpec, ds: EngineDataset, sv_keep: np.ndarray | None, poisson: bool
    ):
        d = spec.dataset(ds.name)
        T, D = spec.num_steps, d.n_neurons
        T_enc = spec.num_steps_encoded
        y = np.asarray(ds.valid_data, dtype=np.float64)
        N = y.shape[0]
        heldin = np.zeros(D, bool)
        heldin[list(d.heldin) if d.heldin is not None else slice(None)] = True
        enc = np.zeros(T, bool)
        enc[:T_enc] = True
        static = {
            "heldin": enc[:, None] & heldin[None, :],
            "heldout": enc[:, None] & ~heldin[None, :],
            "fp": ~enc[:, None] & np.ones(D, bool)[None, :],
        }
        self.sv = None
        full: dict[str, np.ndarray] = {r: np.broadcast_to(m, (N, T, D)) for r, m in static.items()}
        if sv_keep is not None:
            sv_full = np.ones((N, T, D), bool)
            sv_full[:, :T_enc][..., heldin] = sv_keep
            full["sv"] = static["heldin"][None] & ~sv_full
            full["heldin"] = static["heldin"][None] & sv_full
            self.sv = torch.as_tensor(sv_full)  # bool, kept = True
        self.static = {r: torch.as_tensor(m, dtype=torch.float32) for r, m in static.items()}
        self.count = {r: float(m.sum()) for r, m in full.items()}
        self.spikes = {r: float(y[m].sum()) for r, m in full.items()}
        self.null = {}
        if poisson:
            for r, m in full.items():
                if not m.any():
                    continue
                c = m.sum((0, 1))
                s = (y * m).sum((0, 1))
                lam = np.divide(s, c, out=np.zeros(D), where=c > 0)
                self.null[r] = poisson_nll(np.broadcast_to(lam, y.shape)[m], y[m])
        self.n_trials = N


class ValidMetrics:
    """Accumulates one validation pass and turns it into the metrics above."""

    def __init__(
        self,
        spec: ModelSpec,
        datasets: Mapping[str, EngineDataset],
        sv_keep: Mapping[str, Mapping[str, np.ndarray]],
        device: torch.device,
    ) -> None:
        self.spec = spec
        self.device = device
        self.poisson = spec.hps.output_dist == "poisson"
        self.regions = {
            name: _DatasetRegions(
                spec, ds, sv_keep.get(name, {}).get("valid") if sv_keep else None, self.poisson
            )
            for name, ds in datasets.items()
        }
        self.has_heldout = any(r.count["heldout"] > 0 for r in self.regions.values())
        self.has_fp = spec.num_steps_encoded < spec.num_steps
        self.has_sv = spec.hps.sv_rate > 0
        self.start()

    def start(self) -> None:
        # Per-trial sums, so the padding trials of the last batch count once.
        self._ll = {
            name: {r: np.zeros(reg.n_trials) for r in _REGIONS}
            for name, reg in self.regions.items()
        }

    def add(self, name: str, idx: np.ndarray, ll_elem: torch.Tensor) -> None:
        """Record log p(x | z) per element [T, B, D] of the trials ``idx``."""
        reg = self.regions[name]
        ll = ll_elem.detach().double()
        sums = {}
        for r in ("heldin", "heldout", "fp"):
            m = reg.static[r].to(ll.device, torch.float64)
            if r == "heldin" and reg.sv is not None:
                sv = reg.sv[torch.as_tensor(idx)].to(ll.device, torch.float64).transpose(0, 1)
                sums["sv"] = (ll * m[:, None, :] * (1.0 - sv)).sum((0, 2))
                sums[r] = (ll * m[:, None, :] * sv).sum((0, 2))
            else:
                sums[r] = (ll * m[:, None, :]).sum((0, 2))
        for r, v in sums.items():
            self._ll[name][r][idx] = v.cpu().numpy()

    def finish(self) -> dict[str, float]:
        """The metrics of the pass (only those the run's data define)."""
        out: dict[str, float] = {}
        present = {"heldin": True, "heldout": self.has_heldout, "fp": self.has_fp}
        present["sv"] = self.has_sv
        for r in _REGIONS:
            if not present[r]:
                continue
            nll = -sum(float(self._ll[n][r].sum()) for n in self.regions)
            count = sum(reg.count[r] for reg in self.regions.values())
            if count <= 0:
                continue
            key = {"heldin": "valid_nll_heldin", "heldout": "valid_nll_heldout"}.get(
                r, f"valid_nll_{r}"
            )
            out[key] = nll / count
            spikes = sum(reg.spikes[r] for reg in self.regions.values())
            if self.poisson and r in _BPS_NAMES and spikes > 0:
                null = sum(reg.null.get(r, 0.0) for reg in self.regions.values())
                out[_BPS_NAMES[r]] = (null - nll) / spikes / math.log(2)
        return out
