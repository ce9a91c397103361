"""Where every random number of the engine comes from.

:class:`NoiseSource` draws dropout masks and standard normals. With the native
kernels it uses a counter-based generator (splitmix64 of key and position:
fast, and its whole state is two integers); otherwise a seeded
``torch.Generator``. Draws happen on the CPU and are moved to the model's
device, so a seeded run gives the same numbers on any device.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ._ext import native

__all__ = ["NoiseSource", "as_noise_source", "stream_description"]

_MASK64 = (1 << 64) - 1
#: What each stream kind (``NoiseSource.kind``, stored in checkpoints) is, for messages.
_STREAMS = {
    "counter": "native kernels' counter-based random stream",
    "torch": "pure-torch random stream (torch.Generator)",
}


def stream_description(kind: str) -> str:
    return _STREAMS.get(kind, f"{kind!r} random stream")


class NoiseSource:
    """Dropout masks and normal draws for one run, reproducible from ``seed``."""

    def __init__(
        self,
        seed: int,
        *,
        use_native: bool | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        self.seed = int(seed)
        self._ops = native() if use_native in (None, True) and generator is None else None
        # Key of the counter generator: the seed scrambled once (splitmix64 increment).
        self.key = (self.seed * 0x9E3779B97F4A7C15 + 0xD1B54A32D192ED03) & _MASK64
        self.counter = 0
        self.generator = generator if generator is not None else torch.Generator()
        if generator is None:
            self.generator.manual_seed(self.seed)

    @property
    def kind(self) -> str:
        return "counter" if self._ops is not None else "torch"

    def _signed(self, v: int) -> int:
        return v - (1 << 64) if v >= (1 << 63) else v

    def keep_mask(self, shape, kp: float, device: torch.device) -> torch.Tensor:
        """1/kp where kept (probability kp), else 0: ``x * mask`` is TF's dropout."""
        if self._ops is not None:
            out = torch.empty(shape, dtype=torch.float32)
            self._ops.keep_mask_(out, self._signed(self.key), self._signed(self.counter), kp)
            self.counter = (self.counter + out.numel()) & _MASK64
        else:
            out = (torch.rand(shape, generator=self.generator) < kp) * (1.0 / kp)
        return out.to(device, non_blocking=True)

    def normal(self, shape, device: torch.device) -> torch.Tensor:
        if self._ops is not None:
            out = torch.empty(shape, dtype=torch.float32)
            self._ops.normal_(out, self._signed(self.key), self._signed(self.counter))
            self.counter = (self.counter + out.numel()) & _MASK64
        else:
            out = torch.randn(shape, generator=self.generator)
        return out.to(device, non_blocking=True)

    # ----------------------------------------------------------------- state
    def state(self) -> tuple[dict[str, Any], np.ndarray]:
        """JSON-able part and the torch generator state (uint8 array)."""
        return (
            {"seed": self.seed, "kind": self.kind, "counter": self.counter},
            self.generator.get_state().numpy(),
        )

    def set_state(self, info: dict[str, Any], torch_state: np.ndarray) -> None:
        self.counter = int(info.get("counter", 0))
        self.generator.set_state(torch.from_numpy(np.asarray(torch_state, dtype=np.uint8)))


def as_noise_source(noise: NoiseSource | torch.Generator | None) -> NoiseSource:
    """A :class:`NoiseSource` for ``noise``: itself, a wrapped generator, or an unseeded one."""
    if isinstance(noise, NoiseSource):
        return noise
    if isinstance(noise, torch.Generator):
        return NoiseSource(0, generator=noise)
    return NoiseSource(int(np.random.SeedSequence().entropy % (2**63)))
