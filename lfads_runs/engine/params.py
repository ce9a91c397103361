"""The LFADS variables as torch tensors, stored under their TensorFlow names.

One tensor per :class:`~lfads_runs.model_spec.VarSpec`, shaped exactly like the
TensorFlow variable (weights ``[in, out]``, biases ``[1, out]``), so importing
from and exporting to checkpoints and ``model_params`` is a name-for-name copy.
Initialisation follows spec §4.2.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import torch

from ..exceptions import CheckpointError
from ..model_spec import ModelSpec, VarSpec

__all__ = ["ParamStore", "Alignment", "init_value"]

#: Per-dataset alignment arrays from the input files: (matrix [D, F] or None, bias [D] or
#: None), optionally followed by the held-in neuron indices the read-in sees.
Alignment = Mapping[str, tuple]


def _attr_name(tf_name: str) -> str:
    # nn.Module attribute names cannot contain '/' or '.'.
    return "v_" + re.sub(r"[^0-9A-Za-z_]", "_", tf_name)


def init_value(v: VarSpec, generator: torch.Generator, alignment: Alignment) -> torch.Tensor:
    """Initial value of one variable (float32, CPU), drawn from ``generator`` when random."""
    if v.init == "zeros":
        return torch.zeros(v.shape)
    if v.init == "const":
        return torch.full(v.shape, float(v.init_scale))
    if v.init == "normal":
        return torch.randn(v.shape, generator=generator) * v.init_scale
    if v.init == "alignment":
        mat, bias, *rest = alignment.get(v.dataset, (None, None)) if v.dataset else (None, None)
        heldin = rest[0] if rest else None
        if mat is None:
            raise CheckpointError(f"variable {v.name} needs the alignment matrix of {v.dataset}")
        mat32 = np.asarray(mat, dtype=np.float32)
        bias32 = None if bias is None else np.asarray(bias, dtype=np.float32).reshape(1, -1)
        readin = v.name.startswith("LFADS/x_2_infac_")
        if readin and heldin is not None:  # the read-in sees the held-in neurons only
            mat32 = mat32[np.asarray(heldin)]
            bias32 = None if bias32 is None else bias32[:, np.asarray(heldin)]
        if v.name.endswith("/W"):
            value = mat32 if readin else mat32.T
        elif readin:  # b_in = -bias . W_in: the bias is subtracted before the projection
            value = np.zeros(v.shape, np.float32) if bias32 is None else -(bias32 @ mat32)
        else:  # read-out bias = alignment bias
            value = np.zeros(v.shape, np.float32) if bias32 is None else bias32
        if value.shape != v.shape:
            raise CheckpointError(
                f"alignment data of dataset {v.dataset} give {v.name} the shape {value.shape}, "
                f"expected {v.shape}"
            )
        return torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
    raise ValueError(f"unknown init rule {v.init!r} for {v.name}")


class ParamStore(torch.nn.Module):
    """Every model variable of a :class:`ModelSpec` as a torch parameter.

    Variables the optimiser updates (``spec.updated_variables()``) require
    gradients; the others (non-trainable ones, and those frozen by
    ``do_train_io_only`` / ``do_train_encoder_only``) do not.
    """

    def __init__(self, spec: ModelSpec, *, device: str | torch.device = "cpu") -> None:
        super().__init__()
        self.spec = spec
        self._attrs: dict[str, str] = {}
        updated = {v.name for v in spec.updated_variables()}
        for v in spec.variables:
            attr = _attr_name(v.name)
            if attr in self._attrs.values():  # distinct TF names that sanitise alike
                attr = f"{attr}_{len(self._attrs)}"
            self._attrs[v.name] = attr
            p = torch.nn.Parameter(
                torch.zeros(v.shape, dtype=torch.float32, device=device),
                requires_grad=v.name in updated,
            )
            self.register_parameter(attr, p)

    # ------------------------------------------------------------------ access
    def __getitem__(self, tf_name: str) -> torch.nn.Parameter:
        return getattr(self, self._attrs[tf_name])

    def __contains__(self, tf_name: object) -> bool:
        return tf_name in self._attrs

    def names(self) -> list[str]:
        """TF names in build order."""
        return list(self._attrs)

    def by_tf_name(self) -> dict[str, torch.nn.Parameter]:
        """The exact TF-name view: name -> parameter."""
        return {n: getattr(self, a) for n, a in self._attrs.items()}

    def updated(self) -> dict[str, torch.nn.Parameter]:
        """Parameters the optimiser updates, by TF name, in build order."""
        return {n: p for n, p in self.by_tf_name().items() if p.requires_grad}

    # ------------------------------------------------------------ init / copy
    def initialize(self, generator: torch.Generator, alignment: Alignment | None = None) -> None:
        """Draw every variable's initial value (spec §4.2), in build order."""
        alignment = alignment or {}
        with torch.no_grad():
            for v in self.spec.variables:
                self[v.name].copy_(init_value(v, generator, alignment))

    def load_arrays(self, arrays: Mapping[str, np.ndarray], *, source: str = "weights") -> None:
        """Copy values by TF name; every variable of the model must be present.

        Raises
        ------
        CheckpointError
            A variable is missing or has the wrong shape.
        """
        missing = [n for n in self._attrs if n not in arrays]
        if missing:
            raise CheckpointError(
                f"{source} lacks {len(missing)} variable(s) of this model, e.g. {missing[:3]}"
            )
        with torch.no_grad():
            for name in self._attrs:
                a = np.asarray(arrays[name])
                p = self[name]
                if tuple(a.shape) != tuple(p.shape):
                    raise CheckpointError(
                        f"{source}: variable {name} has shape {tuple(a.shape)}, "
                        f"this model expects {tuple(p.shape)}"
                    )
                p.copy_(torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)))

    def to_arrays(self) -> dict[str, np.ndarray]:
        """TF name -> float32 numpy copy."""
        return {
            n: p.detach().cpu().numpy().astype(np.float32, copy=True)
            for n, p in self.by_tf_name().items()
        }
