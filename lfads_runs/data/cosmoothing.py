"""Held-in/held-out neurons and forward-prediction bins of an LFADS input file.

Co-smoothing (NLB'21): the encoders read the held-in neurons only, the read-out
predicts every neuron, so the held-out neurons' rates must be inferred from the
population. Forward prediction: the last ``forward_bins`` bins of each trial are
predicted but never encoded. Both live in ``lfads_<ds>.h5`` as extra keys, which
readers that do not know them (TF LFADS, MATLAB) ignore:

``heldin_neurons``, ``heldout_neurons``
    0-based neuron indices (int64); disjoint, together every neuron.
``forward_bins``
    number of trailing bins that are forward-prediction targets (int64 scalar).

The key names live in :mod:`lfads_runs.io.split_keys`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import attrs
import numpy as np

from ..exceptions import DataError
from ..io.split_keys import FORWARD_KEY, HELDIN_KEY, HELDOUT_KEY

if TYPE_CHECKING:
    from ..io.lfads_input import LfadsInput

__all__ = [
    "HELDIN_KEY",
    "HELDOUT_KEY",
    "FORWARD_KEY",
    "CosmoothingSplit",
    "read_split",
    "split_extras",
    "choose_heldout",
    "heldout_from_spec",
]


@attrs.frozen(eq=False)
class CosmoothingSplit:
    """The split an input file declares; ``heldin``/``heldout`` None when it has none."""

    heldin: np.ndarray | None
    heldout: np.ndarray | None
    forward_bins: int = 0

    @property
    def has_heldout(self) -> bool:
        return self.heldout is not None and self.heldout.size > 0


def _indices(value: object, key: str, n_neurons: int, where: str) -> np.ndarray:
    a = np.asarray(value)
    if a.ndim == 0:
        a = a.reshape(1)
    if a.ndim != 1:
        raise DataError(f"{where}: {key} must be a list of neuron indices, got shape {a.shape}")
    if a.size and np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all() or not np.equal(np.mod(a, 1), 0).all():
            raise DataError(f"{where}: {key} must hold integer neuron indices, got {a.tolist()}")
        a = a.astype(np.int64)
    elif a.size and not np.issubdtype(a.dtype, np.integer):
        raise DataError(f"{where}: {key} must hold integer neuron indices, got dtype {a.dtype}")
    a = a.astype(np.int64)
    bad = a[(a < 0) | (a >= n_neurons)]
    if bad.size:
        raise DataError(
            f"{where}: {key} holds {bad[0]}, out of range for {n_neurons} neurons "
            f"(0-based indices 0..{n_neurons - 1})"
        )
    uniq, counts = np.unique(a, return_counts=True)
    if (counts > 1).any():
        raise DataError(f"{where}: {key} names neuron {uniq[counts > 1][0]} more than once")
    return uniq


def _validate(
    n_neurons: int,
    num_steps: int,
    heldout: object | None,
    heldin: object | None,
    forward_bins: object,
    where: str,
) -> CosmoothingSplit:
    fb = np.asarray(forward_bins)
    if fb.size != 1 or not np.issubdtype(fb.dtype, np.number) or not np.isfinite(fb).all():
        raise DataError(f"{where}: {FORWARD_KEY} must be one whole number, got {fb.tolist()}")
    fbv = float(fb.reshape(-1)[0])
    if not fbv.is_integer() or not 0 <= fbv < num_steps:
        raise DataError(
            f"{where}: {FORWARD_KEY} = {fbv:g}; expected a whole number of bins in "
            f"[0, {num_steps}) (forward prediction must be shorter than the trial)"
        )
    if heldout is None and heldin is None:
        return CosmoothingSplit(None, None, int(fbv))
    out = _indices([] if heldout is None else heldout, HELDOUT_KEY, n_neurons, where)
    if heldin is None:
        hin = np.setdiff1d(np.arange(n_neurons), out)
    else:
        hin = _indices(heldin, HELDIN_KEY, n_neurons, where)
        both = np.intersect1d(hin, out)
        if both.size:
            raise DataError(
                f"{where}: neuron {both[0]} is both held in ({HELDIN_KEY}) and held out "
                f"({HELDOUT_KEY}); the two lists must be disjoint"
            )
        missing = np.setdiff1d(np.arange(n_neurons), np.union1d(hin, out))
        if missing.size:
            raise DataError(
                f"{where}: neuron {missing[0]} is neither held in nor held out; "
                f"{HELDIN_KEY} and {HELDOUT_KEY} must together name all {n_neurons} neurons"
            )
    if hin.size == 0:
        raise DataError(f"{where}: every neuron is held out; the encoders need held-in neurons")
    return CosmoothingSplit(hin, out, int(fbv))


def read_split(inp: LfadsInput, path: str | os.PathLike) -> CosmoothingSplit:
    """The split declared by an :class:`~lfads_runs.io.lfads_input.LfadsInput` read from ``path``.

    Raises
    ------
    DataError
        Indices out of range, repeated, overlapping, not covering every neuron,
        or a forward window not shorter than the trial.
    """
    extras: Mapping[str, np.ndarray] = inp.extras
    if inp.train_data.ndim != 3:
        raise DataError(
            f"{path}: train_data must be trials x time x neurons, got shape {inp.train_data.shape}"
        )
    return _validate(
        int(inp.train_data.shape[2]),
        int(inp.train_data.shape[1]),
        extras.get(HELDOUT_KEY),
        extras.get(HELDIN_KEY),
        extras.get(FORWARD_KEY, 0),
        str(path),
    )


def split_extras(
    n_neurons: int,
    num_steps: int,
    *,
    heldout: Sequence[int] | np.ndarray | None = None,
    forward_bins: int = 0,
    where: str = "input",
) -> dict[str, np.ndarray]:
    """Validated extra keys to write into an input file (empty when there is no split)."""
    split = _validate(n_neurons, num_steps, heldout, None, forward_bins, where)
    out: dict[str, np.ndarray] = {}
    if split.has_heldout:
        out[HELDIN_KEY] = split.heldin.astype(np.int64)
        out[HELDOUT_KEY] = split.heldout.astype(np.int64)
    if split.forward_bins:
        out[FORWARD_KEY] = np.asarray(split.forward_bins, dtype=np.int64)
    return out


def choose_heldout(
    n_neurons: int,
    *,
    indices: Sequence[int] | None = None,
    fraction: float | None = None,
    seed: int = 0,
    where: str = "heldout_neurons",
) -> np.ndarray:
    """Held-out neuron indices: given explicitly, or a random ``fraction`` drawn with ``seed``.

    Raises
    ------
    DataError
        Both or neither given, a fraction outside (0, 1), or bad indices.
    """
    if (indices is None) == (fraction is None):
        raise DataError(f"{where}: give held-out neuron indices or a fraction, not both/neither")
    if indices is not None:
        out = _indices(list(indices), "heldout_neurons", n_neurons, where)
    else:
        f = float(fraction)  # type: ignore[arg-type]
        if not 0.0 < f < 1.0:
            raise DataError(f"{where}: heldout_fraction must be in (0, 1), got {fraction}")
        k = int(round(f * n_neurons))
        k = min(max(k, 1), n_neurons - 1)
        rng = np.random.default_rng(int(seed))
        out = np.sort(rng.choice(n_neurons, size=k, replace=False)).astype(np.int64)
    if out.size >= n_neurons:
        raise DataError(f"{where}: every neuron is held out; the encoders need held-in neurons")
    return out


def heldout_from_spec(spec: object, n_neurons: int, where: str) -> np.ndarray:
    """Held-out indices from a YAML ``heldout_neurons`` value (None: no neuron held out).

    ``spec`` is a list of 0-based indices, or a mapping ``{fraction: f, seed: s}``.

    Raises
    ------
    DataError
        Any other shape, or what :func:`choose_heldout` refuses.
    """
    if spec is None:
        return np.zeros(0, dtype=np.int64)
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"fraction", "seed"}
        if unknown or "fraction" not in spec:
            raise DataError(
                f"{where}: expected {{fraction: f, seed: s}} or a list of neuron indices, "
                f"got keys {sorted(map(str, spec))}"
            )
        seed = spec.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise DataError(f"{where}: seed must be a non-negative integer, got {seed!r}")
        frac = spec["fraction"]
        if isinstance(frac, bool) or not isinstance(frac, int | float):
            raise DataError(f"{where}: fraction must be a number in (0, 1), got {frac!r}")
        return choose_heldout(n_neurons, fraction=float(frac), seed=seed, where=where)
    if isinstance(spec, str) or not isinstance(spec, Sequence):
        raise DataError(f"{where}: expected a list of neuron indices or {{fraction, seed}}")
    if any(isinstance(i, bool) or not isinstance(i, int) for i in spec):
        raise DataError(f"{where}: neuron indices must be integers, got {list(spec)}")
    return choose_heldout(n_neurons, indices=list(spec), where=where)
