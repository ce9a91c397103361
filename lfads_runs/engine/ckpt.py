"""Checkpoints: TensorFlow TensorBundles plus our resume sidecar.

Each checkpoint ``<save_dir>/<checkpoint_name>[_lve].ckpt-<step>`` is a real
TensorFlow checkpoint (``.index`` + ``.data-00000-of-00001``, no ``.meta``)
holding every variable under its TF name, the Adam slots
(``LFADS/LFADS/<path>/Adam``, ``/Adam_1``) and the scalars ``global_step``
(int64), ``learning_rate``, ``beta1_power`` and ``beta2_power`` (spec §5, §7.6).

Next to it, ``<prefix>.lfads_runs.json`` (plus ``<prefix>.lfads_runs.rng.npz``)
holds what an exact resume needs and TensorFlow does not save: the epoch
counter and phase, the learning-rate and validation histories, the random
generator states, the elapsed time and the fit-log length. Its presence marks
a checkpoint written by this engine; a checkpoint without it (written by
TensorFlow) resumes with TensorFlow's restart semantics (spec §7.9).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from .. import layout as L
from .._atomic import atomic_path, atomic_write_text
from ..exceptions import CheckpointError
from ..io.checkpoints import checkpoint_files
from ..model_spec import SCALAR_VARIABLES, ModelSpec, adam_slot_names, hdf5_key

__all__ = [
    "ResumeState",
    "checkpoint_tensors",
    "save_checkpoint",
    "read_sidecar",
    "read_checkpoint_arrays",
    "split_checkpoint_arrays",
    "remove_checkpoint",
    "CheckpointSet",
    "weights_from_model_params",
]

SIDECAR_VERSION = 1


def _enc(x: float) -> Any:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return float(x)


def _dec(x: Any) -> float:
    return float(x) if not isinstance(x, str) else float(x)


@attrs.define
class ResumeState:
    """Everything besides the tensors that makes a resumed run identical to an uninterrupted one."""

    epoch: int  #: epoch counter (0-based) of the epoch the checkpoint was written in
    phase: str  #: "after_train", "after_valid" or "end_of_epoch"
    train_costs: list[float] = attrs.field(factory=list)  #: LR-rule history (inf after a decay)
    valid_costs: list[float] = attrs.field(factory=list)
    lowest_valid_cost: float = math.inf
    elapsed_seconds: float = 0.0
    seed: int = 0
    fitlog_size: int = 0  #: bytes of fitlog.csv when the checkpoint was written
    epoch_values: dict[str, float] = attrs.field(factory=dict)  #: this epoch's costs so far
    regular_kept: list[str] = attrs.field(factory=list)  #: kept regular checkpoints, oldest first
    lve_kept: list[str] = attrs.field(factory=list)
    finished: str | None = None  #: why training ended, when it did
    numpy_rng: dict[str, Any] = attrs.field(factory=dict)
    noise: dict[str, Any] = attrs.field(factory=dict)  #: NoiseSource state (kind, counter)
    smoothed: dict[str, float] = attrs.field(factory=dict)  #: smoothed selection metrics

    def to_json(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        d["train_costs"] = [_enc(x) for x in self.train_costs]
        d["valid_costs"] = [_enc(x) for x in self.valid_costs]
        d["lowest_valid_cost"] = _enc(self.lowest_valid_cost)
        d["epoch_values"] = {k: _enc(v) for k, v in self.epoch_values.items()}
        d["engine"] = "lfads_runs"
        d["version"] = SIDECAR_VERSION
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ResumeState:
        names = {a.name for a in attrs.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["train_costs"] = [_dec(x) for x in d.get("train_costs", [])]
        kw["valid_costs"] = [_dec(x) for x in d.get("valid_costs", [])]
        kw["lowest_valid_cost"] = _dec(d.get("lowest_valid_cost", "inf"))
        kw["epoch_values"] = {k: _dec(v) for k, v in d.get("epoch_values", {}).items()}
        return cls(**kw)


def checkpoint_tensors(
    params: Mapping[str, np.ndarray],
    slots: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    step: int,
    learning_rate: float,
    beta1_power: float,
    beta2_power: float,
) -> dict[str, np.ndarray]:
    """Every tensor of a training checkpoint, by TF name."""
    out: dict[str, np.ndarray] = {n: np.asarray(a, np.float32) for n, a in params.items()}
    for n, (m, v) in slots.items():
        sm, sv = adam_slot_names(n)
        out[sm] = np.asarray(m, np.float32)
        out[sv] = np.asarray(v, np.float32)
    out["LFADS/global_step"] = np.asarray(step, np.int64)
    out["LFADS/learning_rate"] = np.asarray(learning_rate, np.float32)
    out["LFADS/beta1_power"] = np.asarray(beta1_power, np.float32)
    out["LFADS/beta2_power"] = np.asarray(beta2_power, np.float32)
    return out


def sidecar_path(prefix: str | os.PathLike) -> Path:
    return Path(f"{os.fspath(prefix)}{L.CHECKPOINT_SIDECAR_SUFFIX}")


def rng_path(prefix: str | os.PathLike) -> Path:
    return Path(f"{os.fspath(prefix)}{L.CHECKPOINT_RNG_SUFFIX}")


def save_checkpoint(
    prefix: str | os.PathLike,
    tensors: Mapping[str, np.ndarray],
    state: ResumeState,
    torch_rng_state: np.ndarray,
) -> None:
    """Write the bundle, then the RNG file, then the sidecar (each atomically).

    The sidecar comes last: a checkpoint counts as ours only once it is complete.
    """
    from ..io.tensorbundle import write_bundle

    prefix = Path(prefix)
    with contextlib.suppress(FileNotFoundError):
        sidecar_path(prefix).unlink()  # a stale sidecar must not describe new tensors
    write_bundle(prefix, tensors)
    with atomic_path(rng_path(prefix)) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, torch=np.asarray(torch_rng_state, np.uint8))
    atomic_write_text(sidecar_path(prefix), json.dumps(state.to_json(), indent=1) + "\n")


def read_sidecar(prefix: str | os.PathLike) -> tuple[ResumeState, np.ndarray] | None:
    """Our resume state of a checkpoint, or None when it was not written by this engine."""
    sp = sidecar_path(prefix)
    if not sp.is_file():
        return None
    try:
        d = json.loads(sp.read_text(encoding="utf-8"))
        state = ResumeState.from_json(d)
        with np.load(rng_path(prefix)) as z:
            rng = np.array(z["torch"], dtype=np.uint8)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{sp}: unreadable resume state: {exc}") from exc
    return state, rng


def read_checkpoint_arrays(prefix: str | os.PathLike) -> dict[str, np.ndarray]:
    """All tensors of a TensorFlow-format checkpoint by TF name."""
    from ..io.tensorbundle import read_bundle

    return read_bundle(prefix)


def split_checkpoint_arrays(
    spec: ModelSpec, arrays: Mapping[str, np.ndarray], *, source: str
) -> tuple[dict[str, np.ndarray], dict[str, tuple[np.ndarray, np.ndarray]], dict[str, Any]]:
    """(variables, Adam slots, scalars) of a checkpoint's tensors for this model.

    Raises
    ------
    CheckpointError
        A variable of the model is missing (the checkpoint belongs to another model).
    """
    missing = [v.name for v in spec.variables if v.name not in arrays]
    if missing:
        raise CheckpointError(
            f"{source} does not hold {len(missing)} variable(s) of this model, e.g. "
            f"{missing[:3]}; was it written for other hyperparameters or datasets?"
        )
    variables = {v.name: arrays[v.name] for v in spec.variables}
    slots = {}
    for v in spec.updated_variables():
        m, s = adam_slot_names(v.name)
        if m in arrays and s in arrays:
            slots[v.name] = (arrays[m], arrays[s])
    scalars = {n.split("/")[-1]: arrays[n] for n in SCALAR_VARIABLES if n in arrays}
    return variables, slots, scalars


def weights_from_model_params(spec: ModelSpec, path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every checkpoint tensor of a ``model_params`` file, keyed by TF checkpoint name."""
    from ..io.model_params import read_model_params

    by_key = {}
    for name in spec.checkpoint_shapes():
        by_key[hdf5_key(name)] = name
    raw = read_model_params(path)
    return {by_key[k]: a for k, a in raw.items() if k in by_key}


def remove_checkpoint(prefix: str | os.PathLike) -> None:
    """Delete a checkpoint's files (sidecar first, so a half-deleted one is never 'ours')."""
    files = checkpoint_files(prefix)
    files.sort(key=lambda p: 0 if p.name.endswith(L.CHECKPOINT_SIDECAR_SUFFIX) else 1)
    for p in files:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


class CheckpointSet:
    """The checkpoints of one kind (regular or LVE) with TF's saver retention.

    Keeps at most ``max_to_keep``, deletes the oldest beyond that and rewrites
    the pointer file (``checkpoint`` / ``checkpoint_lve``) after every save.
    """

    def __init__(
        self, save_dir: Path, pointer: str, max_to_keep: int, kept: Sequence[str] = ()
    ) -> None:
        self.save_dir = Path(save_dir)
        self.pointer = pointer
        self.max_to_keep = max_to_keep
        self.kept: list[str] = list(kept)

    def add(self, name: str) -> None:
        """Register a just-written checkpoint ``name`` (file-name prefix) and apply retention."""
        if name in self.kept:
            self.kept.remove(name)
        self.kept.append(name)
        if self.max_to_keep > 0:
            while len(self.kept) > self.max_to_keep:
                old = self.kept.pop(0)
                remove_checkpoint(self.save_dir / old)
        self.write_pointer()

    def write_pointer(self) -> None:
        from ..io.checkpoint_state import write_checkpoint_state

        if self.kept:
            write_checkpoint_state(self.save_dir, self.pointer, self.kept[-1], list(self.kept))
