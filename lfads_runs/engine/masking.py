"""Coordinated dropout and sample validation: which data elements the encoders see
and which the reconstruction cost counts (Keshtkaran & Pandarinath, NeurIPS 2019).

Both act on the *encoded* elements: held-in neurons in the bins before the
forward-prediction window. Held-out neurons and forward bins are never input,
so the cost always counts them.

- Sample validation (``sv_rate``): one fixed mask per dataset and split, drawn
  from ``sv_seed``; the held-back elements are removed from the input (the rest
  rescaled by 1/(1 − sv_rate)) and from the training cost, in every pass.
- Coordinated dropout (``cd_rate``), training passes only: a fresh mask per step
  from the run's noise source; the encoders see the kept elements rescaled by
  1/(1 − cd_rate), the cost counts the dropped ones, plus a ``cd_pass_rate``
  fraction of all elements let through.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from ..hparams import Hyperparameters
from ..model_spec import ModelSpec
from ._rng import NoiseSource
from .data import SPLITS, EngineDataset

__all__ = ["ElementMasks", "sample_validation_mask"]


def sample_validation_mask(
    shape: tuple[int, ...], sv_rate: float, sv_seed: int, dataset_index: int, split: str
) -> np.ndarray:
    """Boolean mask, True where an element is *kept* (not held back for validation)."""
    rng = np.random.default_rng([int(sv_seed), int(dataset_index), SPLITS.index(split)])
    return rng.random(shape) >= sv_rate


class ElementMasks:
    """The per-batch input scales and cost masks of one run."""

    def __init__(
        self,
        hps: Hyperparameters,
        spec: ModelSpec,
        datasets: Mapping[str, EngineDataset],
        device: torch.device,
    ) -> None:
        self.hps = hps
        self.spec = spec
        self.device = device
        self.T_enc = spec.num_steps_encoded
        #: name -> split -> kept mask [N, T_enc, D_in] (bool, numpy) when sv_rate > 0.
        self.sv_keep: dict[str, dict[str, np.ndarray]] = {}
        self._sv_t: dict[str, dict[str, torch.Tensor]] = {}
        self._heldin: dict[str, torch.Tensor | None] = {}
        for k, (name, ds) in enumerate(datasets.items()):
            d = spec.dataset(name)
            self._heldin[name] = (
                None
                if d.heldin is None
                else torch.tensor(d.heldin, dtype=torch.long, device=device)
            )
            if hps.sv_rate > 0:
                self.sv_keep[name] = {}
                self._sv_t[name] = {}
                for split in SPLITS:
                    n = ds.data(split).shape[0]
                    keep = sample_validation_mask(
                        (n, self.T_enc, d.n_encoded), hps.sv_rate, hps.sv_seed, k, split
                    )
                    self.sv_keep[name][split] = keep
                    # bool: a quarter of float32's memory on long, wide datasets
                    self._sv_t[name][split] = torch.as_tensor(keep, device=device)

    @property
    def active(self) -> bool:
        return self.hps.sv_rate > 0 or self.hps.cd_rate > 0

    def for_batch(
        self, name: str, split: str, idx: np.ndarray, x: torch.Tensor, noise: NoiseSource | None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(input scale [B, T_enc, D_in], cost mask [B, T, D]) of a batch; None = no masking.

        ``noise`` draws the coordinated-dropout mask (training passes); None = no CD.
        """
        h = self.hps
        cd = noise is not None and h.cd_rate > 0
        if h.sv_rate <= 0 and not cd:
            return None, None
        B, T, D = x.shape
        D_in = self.spec.dataset(name).n_encoded
        if h.sv_rate > 0:
            kept = self._sv_t[name][split][torch.as_tensor(idx, device=self.device)].float()
            scale = kept / (1.0 - h.sv_rate)
            counted = kept
        else:
            scale = torch.ones(B, self.T_enc, D_in, device=self.device)
            counted = scale
        if cd:
            shape = (B, self.T_enc, D_in)
            cd_scale = noise.keep_mask(shape, 1.0 - h.cd_rate, self.device)
            scale = scale * cd_scale
            hidden = cd_scale == 0
            if h.cd_pass_rate > 0:
                hidden = hidden | (noise.keep_mask(shape, h.cd_pass_rate, self.device) > 0)
            counted = counted * hidden
        mask = torch.ones(B, T, D, device=self.device)
        heldin = self._heldin[name]
        if heldin is None:
            mask[:, : self.T_enc] = counted
        else:
            mask[:, : self.T_enc, heldin] = counted
        return scale, mask
