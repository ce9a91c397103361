"""Trained LFADS weights under the field names of lfads-run-manager's ``ModelTrainedParams``.

:class:`ModelTrainedParameters` holds the weights of one run as read from its
``model_params`` file (run-manager.md §7.1, lfads-model.md §6): arrays in the
file's orientation (``W`` is ``[in, out]``, biases and learned states ``[1, n]``),
float32, per-dataset fields as tuples in the run's dataset order, and ``None``
for parts the model does not have (no controller, identity read-in, ic_dim
equal to gen_dim, causal controller, ...), never zero-filled.

Beyond the MATLAB class it also carries the Gaussian read-outs
(``factors_to_means_*``, ``factors_to_logvars_*``), the learned generator
state ``gen_g0`` of models with ``ic_dim == 0``, and the ``global_step`` and
``learning_rate`` scalars.
"""

from __future__ import annotations

import functools
import html
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from .exceptions import ModelParamsError
from .io.model_params import GLOBAL_STEP_KEY, is_adam_key, read_model_params, write_params_export
from .layout import lfads_dataset_name
from .model_spec import SCALAR_VARIABLES, VARIABLE_GROUPS, ModelSpec, hdf5_key

__all__ = ["ModelTrainedParameters", "FieldInfo", "FIELDS", "GROUPS"]


@attrs.frozen
class FieldInfo:
    """One field: its display group and TensorFlow variable (``{ds}`` = LFADS dataset name)."""

    name: str
    group: str
    variable: str  #: checkpoint name template, e.g. ``LFADS/glm/fac_2_logrates_{ds}/W``
    per_dataset: bool = False

    def checkpoint_name(self, ds: str | None = None) -> str:
        return (
            self.variable.format(ds=lfads_dataset_name(ds)) if self.per_dataset else self.variable
        )

    def hdf5_key(self, ds: str | None = None) -> str:
        return hdf5_key(self.checkpoint_name(ds))


#: Every array field, in display order.
FIELDS: tuple[FieldInfo, ...] = tuple(
    FieldInfo(name, group, var, "{ds}" in var)
    for group, rows in VARIABLE_GROUPS
    for name, var in rows
)
#: Display groups (headings of the MATLAB class display), in order.
GROUPS: tuple[str, ...] = tuple(g for g, _ in VARIABLE_GROUPS)
_BY_NAME = {f.name: f for f in FIELDS}
_SCALAR_KEYS = {hdf5_key(n) for n in SCALAR_VARIABLES}
_LR_KEY = hdf5_key("LFADS/learning_rate")
#: Fields every LFADS model has.
_ALWAYS = (
    "gen_gengru_h_to_ru_W",
    "gen_gengru_h_to_ru_b",
    "gen_gengru_rh_to_c_W",
    "gen_gengru_rh_to_c_b",
    "gen_to_factors_W",
)

Array = np.ndarray
PerDataset = tuple[np.ndarray, ...]


def _to_array(v: Any) -> np.ndarray | None:
    return None if v is None else np.asarray(v)


def _to_tuple(v: Any) -> PerDataset | None:
    return None if v is None else tuple(np.asarray(a) for a in v)


def _arr() -> Any:
    return attrs.field(default=None, kw_only=True, converter=_to_array)


def _per() -> Any:
    return attrs.field(default=None, kw_only=True, converter=_to_tuple)


def _fmt_shape(a: np.ndarray) -> str:
    return f"[{', '.join(str(d) for d in a.shape)}] {a.dtype}"


@attrs.frozen(eq=False, repr=False)
class ModelTrainedParameters:
    """Trained weights of one LFADS run, under lfads-run-manager's field names.

    Attributes
    ----------
    dataset_names
        The run's datasets, in the order of every per-dataset tuple.
    global_step, learning_rate
        The scalars stored with the weights (None when absent).
    source
        The file the weights were read from, if any.
    <fields>
        One attribute per entry of :data:`FIELDS` (``x_to_infac_W``,
        ``ic_enc_fwd_t0``, ..., ``factors_to_logrates_b``): a float32 array,
        a tuple of arrays (per-dataset fields), or None when the model has no
        such part.
    """

    dataset_names: tuple[str, ...] = attrs.field(converter=tuple)
    global_step: int | None = attrs.field(default=None, kw_only=True)
    learning_rate: float | None = attrs.field(default=None, kw_only=True)
    source: Path | None = attrs.field(default=None, kw_only=True)
    # Read-in from spikes to input factors
    x_to_infac_W: PerDataset | None = _per()
    x_to_infac_b: PerDataset | None = _per()
    # Initial condition encoder (forward)
    ic_enc_fwd_t0: Array | None = _arr()
    ic_enc_fwd_gru_xh_to_gates_ru_W: Array | None = _arr()
    ic_enc_fwd_gru_xh_to_gates_ru_b: Array | None = _arr()
    ic_enc_fwd_gru_xrh_to_c_W: Array | None = _arr()
    ic_enc_fwd_gru_xrh_to_c_b: Array | None = _arr()
    # Initial condition encoder (reverse)
    ic_enc_rev_t0: Array | None = _arr()
    ic_enc_rev_gru_xh_to_gates_ru_W: Array | None = _arr()
    ic_enc_rev_gru_xh_to_gates_ru_b: Array | None = _arr()
    ic_enc_rev_gru_xrh_to_c_W: Array | None = _arr()
    ic_enc_rev_gru_xrh_to_c_b: Array | None = _arr()
    # Initial condition g0
    prior_g0_mean: Array | None = _arr()
    prior_g0_logvar: Array | None = _arr()
    ic_enc_to_posterior_g0_mean_W: Array | None = _arr()
    ic_enc_to_posterior_g0_mean_b: Array | None = _arr()
    ic_enc_to_posterior_g0_logvar_W: Array | None = _arr()
    ic_enc_to_posterior_g0_logvar_b: Array | None = _arr()
    g0_to_gen_ic_W: Array | None = _arr()
    g0_to_gen_ic_b: Array | None = _arr()
    gen_g0: Array | None = _arr()
    # Controller encoder (forward)
    ci_enc_fwd_t0: Array | None = _arr()
    ci_enc_fwd_gru_xh_to_ru_W: Array | None = _arr()
    ci_enc_fwd_gru_xh_to_ru_b: Array | None = _arr()
    ci_enc_fwd_gru_xrh_to_c_W: Array | None = _arr()
    ci_enc_fwd_gru_xrh_to_c_b: Array | None = _arr()
    # Controller encoder (reverse)
    ci_enc_rev_t0: Array | None = _arr()
    ci_enc_rev_gru_xh_to_ru_W: Array | None = _arr()
    ci_enc_rev_gru_xh_to_ru_b: Array | None = _arr()
    ci_enc_rev_gru_xrh_to_c_W: Array | None = _arr()
    ci_enc_rev_gru_xrh_to_c_b: Array | None = _arr()
    # Controller RNN
    con_gengru_x_to_ru_W: Array | None = _arr()
    con_gengru_h_to_ru_W: Array | None = _arr()
    con_gengru_h_to_ru_b: Array | None = _arr()
    con_gengru_x_to_c_W: Array | None = _arr()
    con_gengru_rh_to_c_W: Array | None = _arr()
    con_gengru_rh_to_c_b: Array | None = _arr()
    # Controller output co
    prior_ar1_logevars: Array | None = _arr()
    prior_ar1_logatau: Array | None = _arr()
    con_co: Array | None = _arr()
    con_to_posterior_co_mean_W: Array | None = _arr()
    con_to_posterior_co_mean_b: Array | None = _arr()
    con_to_posterior_co_logvar_W: Array | None = _arr()
    con_to_posterior_co_logvar_b: Array | None = _arr()
    # Generator RNN
    gen_gengru_x_to_ru_W: Array | None = _arr()
    gen_gengru_h_to_ru_W: Array | None = _arr()
    gen_gengru_h_to_ru_b: Array | None = _arr()
    gen_gengru_x_to_c_W: Array | None = _arr()
    gen_gengru_rh_to_c_W: Array | None = _arr()
    gen_gengru_rh_to_c_b: Array | None = _arr()
    # Generator output and readout
    gen_to_factors_W: Array | None = _arr()
    factors_to_logrates_W: PerDataset | None = _per()
    factors_to_logrates_b: PerDataset | None = _per()
    factors_to_means_W: PerDataset | None = _per()
    factors_to_means_b: PerDataset | None = _per()
    factors_to_logvars_W: PerDataset | None = _per()
    factors_to_logvars_b: PerDataset | None = _per()

    # ------------------------------------------------------------ construction
    @classmethod
    def from_arrays(
        cls,
        arrays: Mapping[str, np.ndarray],
        dataset_names: Sequence[str] | None = None,
        spec: ModelSpec | None = None,
        *,
        source: str | os.PathLike | None = None,
    ) -> ModelTrainedParameters:
        """Build from ``model_params`` arrays (HDF5 key -> array), validating them.

        See :meth:`from_file` for the checks; ``source`` names the file in messages.
        """
        where = str(source) if source is not None else "<arrays>"
        names = _dataset_names(arrays, dataset_names, spec, where)
        problems = _validate(arrays, names, spec) if spec is not None else _check(arrays, names)
        if problems:
            raise ModelParamsError(
                f"{where}: model_params does not match the model "
                f"({len(problems)} problem{'s' if len(problems) > 1 else ''}):\n  - "
                + "\n  - ".join(problems)
            )
        kw: dict[str, Any] = {}
        for f in FIELDS:
            if f.per_dataset:
                parts = [arrays.get(f.hdf5_key(ds)) for ds in names]
                kw[f.name] = None if any(p is None for p in parts) else parts
            else:
                kw[f.name] = arrays.get(f.hdf5_key())
        step = arrays.get(GLOBAL_STEP_KEY)
        lr = arrays.get(_LR_KEY)
        return cls(
            names,
            global_step=None if step is None else int(step),
            learning_rate=None if lr is None else float(lr),
            source=None if source is None else Path(source),
            **kw,
        )

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike,
        dataset_names: Sequence[str] | None = None,
        spec: ModelSpec | None = None,
    ) -> ModelTrainedParameters:
        """Read and validate a ``model_params`` file.

        Parameters
        ----------
        path
            The ``model_params`` file.
        dataset_names
            The run's dataset names (``dataset001`` or ``dataset001.h5``), in
            the run's order. Default: the spec's, else those found in the file.
        spec
            The model the file must match. With a spec every present field's
            shape is checked, every variable of the model must be present and
            every other (non-Adam) key is reported. Without one, the file is
            only checked for internal consistency (complete per-dataset fields,
            dimensions that agree, the generator present).

        Raises
        ------
        ModelParamsError
            One error listing every problem (field, HDF5 key, expected and actual
            shape, file); NaN or Inf in any weight is a problem too.
        MissingOutputError
            The file does not exist.
        """
        arrays = read_model_params(path, exclude_adam=True)
        return cls.from_arrays(arrays, dataset_names, spec, source=path)

    # ------------------------------------------------------------ properties
    @property
    def num_datasets(self) -> int:
        return len(self.dataset_names)

    @property
    def is_gaussian(self) -> bool:
        return self.factors_to_means_W is not None

    @property
    def gen_to_factors_W_normalized(self) -> np.ndarray | None:
        """``gen_to_factors_W`` with unit-L2-norm columns, as the model uses it."""
        w = self.gen_to_factors_W
        if w is None:
            return None
        # tf.nn.l2_normalize(W, axis=0): W * rsqrt(max(sum(W**2), 1e-12)), in float32.
        sq = np.sum(np.square(w, dtype=np.float32), axis=0, keepdims=True, dtype=np.float32)
        return (w / np.sqrt(np.maximum(sq, np.float32(1e-12)))).astype(np.float32)

    def _readout_W(self) -> PerDataset | None:
        if self.factors_to_logrates_W is not None:
            return self.factors_to_logrates_W
        return self.factors_to_means_W

    @property
    def num_channels_by_dataset(self) -> tuple[int, ...] | None:
        """Neurons of each dataset: columns of its read-out (rows of its read-in)."""
        w = self._readout_W()
        if w is not None:
            return tuple(int(a.shape[1]) for a in w)
        if self.x_to_infac_W is not None:
            return tuple(int(a.shape[0]) for a in self.x_to_infac_W)
        return None

    @property
    def num_channels_all_datasets(self) -> int | None:
        n = self.num_channels_by_dataset
        return None if n is None else sum(n)

    @property
    def dataset_idx_concatenated(self) -> np.ndarray | None:
        """0-based dataset index of each neuron of the concatenated read-outs."""
        n = self.num_channels_by_dataset
        if n is None:
            return None
        return np.repeat(np.arange(len(n)), n)

    @property
    def dataset_idx_concatenated_1based(self) -> np.ndarray | None:
        """:attr:`dataset_idx_concatenated` + 1: MATLAB's 1-based ``dataset_idx_concatenated``."""
        idx = self.dataset_idx_concatenated
        return None if idx is None else idx + 1

    @property
    def factors_to_logrates_W_concatenated(self) -> np.ndarray | None:
        """Poisson read-outs side by side, ``[factors, all neurons]``."""
        w = self.factors_to_logrates_W
        return None if w is None else np.concatenate(w, axis=1)

    @property
    def factors_to_logrates_b_concatenated(self) -> np.ndarray | None:
        b = self.factors_to_logrates_b
        return None if b is None else np.concatenate(b, axis=1)

    # ------------------------------------------------------------ access
    def fields(self) -> Iterator[tuple[FieldInfo, Any]]:
        """(field, value) for every array field, in display order."""
        for f in FIELDS:
            yield f, getattr(self, f.name)

    def by_dataset(self, field: str) -> dict[str, np.ndarray] | None:
        """A per-dataset field as a dict keyed by dataset name."""
        if not _BY_NAME[field].per_dataset:
            raise ValueError(f"{field} is not a per-dataset field")
        v = getattr(self, field)
        return None if v is None else dict(zip(self.dataset_names, v, strict=True))

    def as_dict(self, include_absent: bool = False) -> dict[str, Any]:
        """Fields as a dict: per-dataset fields as {dataset: array}; scalars and names included."""
        out: dict[str, Any] = {
            "dataset_names": self.dataset_names,
            "global_step": self.global_step,
            "learning_rate": self.learning_rate,
        }
        for f, v in self.fields():
            if v is None and not include_absent:
                continue
            out[f.name] = self.by_dataset(f.name) if f.per_dataset else v
        return out

    _DERIVED = (
        "num_datasets",
        "num_channels_by_dataset",
        "num_channels_all_datasets",
        "dataset_idx_concatenated",
        "factors_to_logrates_W_concatenated",
        "factors_to_logrates_b_concatenated",
        "gen_to_factors_W_normalized",
    )

    def to_hdf5(self, path: str | os.PathLike) -> Path:
        """Export like MATLAB's ``exportToHDF5``, atomically.

        Per-dataset fields go to ``/<field>/<dataset>``, ``dataset_names`` is a
        variable-length string dataset, every other present field (derived ones
        and the scalars included) goes to ``/<field>``. Arrays keep their
        orientation (W is [in, out]).
        """
        fields: dict[str, np.ndarray] = {}
        per: dict[str, dict[str, np.ndarray]] = {}
        for f, v in self.fields():
            if v is None:
                continue
            if f.per_dataset:
                per[f.name] = dict(zip(self.dataset_names, v, strict=True))
            else:
                fields[f.name] = v
        for name in self._DERIVED + ("global_step", "learning_rate"):
            v = getattr(self, name)
            if v is not None:
                fields[name] = np.asarray(v)
        write_params_export(path, fields, per, self.dataset_names)
        return Path(path)

    # ------------------------------------------------------------ display
    def _rows(self) -> Iterator[tuple[str, list[tuple[str, str]]]]:
        for group in GROUPS:
            rows = []
            for f in FIELDS:
                if f.group != group:
                    continue
                v = getattr(self, f.name)
                if v is None:
                    desc = "absent"
                elif f.per_dataset:
                    desc = ", ".join(
                        f"{ds}: {_fmt_shape(a)}"
                        for ds, a in zip(self.dataset_names, v, strict=True)
                    )
                else:
                    desc = _fmt_shape(v)
                rows.append((f.name, desc))
            yield group, rows

    def _title(self) -> str:
        parts = [f"datasets {', '.join(self.dataset_names)}"]
        if self.global_step is not None:
            parts.append(f"global_step {self.global_step}")
        if self.learning_rate is not None:
            parts.append(f"learning_rate {self.learning_rate:.6g}")
        if self.source is not None:
            parts.append(f"from {self.source}")
        return "; ".join(parts)

    def __repr__(self) -> str:
        width = max(len(f.name) for f in FIELDS)
        lines = [f"ModelTrainedParameters({self._title()})"]
        for group, rows in self._rows():
            lines.append(f"  {group}")
            lines += [f"    {name:<{width}}  {desc}" for name, desc in rows]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        e = html.escape
        out = [
            "<table>",
            f"<caption style='text-align:left'><b>ModelTrainedParameters</b> "
            f"({e(self._title())})</caption>",
        ]
        for group, rows in self._rows():
            out.append(f"<tr><th colspan='2' style='text-align:left'>{e(group)}</th></tr>")
            for name, desc in rows:
                style = " style='color:#888'" if desc == "absent" else ""
                out.append(
                    f"<tr><td style='text-align:left'><code>{e(name)}</code></td>"
                    f"<td style='text-align:left'{style}>{e(desc)}</td></tr>"
                )
        out.append("</table>")
        return "".join(out)


# ---------------------------------------------------------------- validation
def _dataset_names(
    arrays: Mapping[str, np.ndarray],
    dataset_names: Sequence[str] | None,
    spec: ModelSpec | None,
    where: str,
) -> tuple[str, ...]:
    if dataset_names is not None:
        names = tuple(str(n) for n in dataset_names)
        if isinstance(dataset_names, str) or not names:
            raise ModelParamsError(f"{where}: dataset_names must be a non-empty list of names")
        lfads = [lfads_dataset_name(n) for n in names]
        if len(set(lfads)) != len(lfads):
            raise ModelParamsError(f"{where}: duplicate dataset names {list(names)}")
        return names
    if spec is not None:
        return tuple(n.removesuffix(".h5") for n in spec.dataset_names)
    found = set()
    for f in FIELDS:
        if not f.per_dataset:
            continue
        head, tail = f.hdf5_key("\0").split(lfads_dataset_name("\0"))
        for k in arrays:
            if k.startswith(head) and k.endswith(tail) and len(k) > len(head) + len(tail):
                found.add(k[len(head) : len(k) - len(tail)])
    if not found:
        raise ModelParamsError(
            f"{where}: no per-dataset keys found; pass dataset_names (the run's datasets)"
        )
    return tuple(sorted(n.removesuffix(".h5") for n in found))


@functools.lru_cache(maxsize=128)
def _expected(spec: ModelSpec) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """(HDF5 key -> shape, HDF5 key -> field label) of a model's variables."""
    shapes = {v.hdf5_key: v.shape for v in spec.variables}
    labels: dict[str, str] = {}
    for f in FIELDS:
        if f.per_dataset:
            for d in spec.datasets:
                labels[f.hdf5_key(d.name)] = f"{f.name}[{d.name.removesuffix('.h5')}]"
        else:
            labels[f.hdf5_key()] = f.name
    for n in SCALAR_VARIABLES:
        labels[hdf5_key(n)] = n.split("/")[-1]
    return shapes, labels


def _shape(s: tuple[int, ...]) -> str:
    return f"[{', '.join(str(d) for d in s)}]"


def _nonfinite(key: str, label: str, a: np.ndarray) -> str | None:
    if a.dtype.kind == "f":
        ok = np.isfinite(a)
        if not ok.all():
            bad = a.size - int(ok.sum())
            return f"{label} ({key}): {bad} of {a.size} values are NaN or Inf"
    return None


def _dtype_problem(key: str, label: str, a: np.ndarray) -> str | None:
    want = np.int64 if key == GLOBAL_STEP_KEY else np.float32
    if a.dtype != want:
        return f"{label} ({key}): dtype {a.dtype}, expected {np.dtype(want)}"
    return None


def _validate(
    arrays: Mapping[str, np.ndarray], names: tuple[str, ...], spec: ModelSpec
) -> list[str]:
    """Every problem of ``arrays`` against ``spec`` (empty list when it matches)."""
    problems: list[str] = []
    want_ds = sorted(lfads_dataset_name(n) for n in names)
    if sorted(spec.dataset_names) != want_ds:
        problems.append(
            f"the model's datasets {list(spec.dataset_names)} are not the run's datasets {want_ds}"
        )
    shapes, labels = _expected(spec)
    expected = dict(shapes)
    expected.update({k: () for k in _SCALAR_KEYS})
    for key, shape in expected.items():
        label = labels.get(key, key)
        a = arrays.get(key)
        if a is None:
            problems.append(f"{label} ({key}): missing, expected shape {_shape(shape)}")
            continue
        if a.shape != shape:
            problems.append(f"{label} ({key}): shape {_shape(a.shape)}, expected {_shape(shape)}")
        for p in (_dtype_problem(key, label, a), _nonfinite(key, label, a)):
            if p:
                problems.append(p)
    for key in arrays:
        if key not in expected and not is_adam_key(key):
            problems.append(f"{key}: unexpected key; the model has no such variable")
    return problems


def _check(arrays: Mapping[str, np.ndarray], names: tuple[str, ...]) -> list[str]:
    """Internal consistency without a model description."""
    problems: list[str] = []
    known: set[str] = set(_SCALAR_KEYS)
    for f in FIELDS:
        if f.per_dataset:
            keys = [f.hdf5_key(ds) for ds in names]
            known.update(keys)
            present = [k for k in keys if k in arrays]
            if present and len(present) != len(keys):
                missing = [k for k in keys if k not in arrays]
                problems.append(
                    f"{f.name}: present for some datasets but missing {', '.join(missing)}"
                )
        else:
            known.add(f.hdf5_key())
    for name in _ALWAYS:
        key = _BY_NAME[name].hdf5_key()
        if key not in arrays:
            problems.append(f"{name} ({key}): missing; every LFADS model has it")
    if GLOBAL_STEP_KEY not in arrays:
        problems.append(f"global_step ({GLOBAL_STEP_KEY}): missing")
    for key in arrays:
        if key not in known and not is_adam_key(key):
            problems.append(
                f"{key}: unexpected key (not a known LFADS variable of datasets {list(names)})"
            )
    for key, a in arrays.items():
        if key not in known:
            continue
        label = key
        if key not in _SCALAR_KEYS and a.ndim != 2:
            problems.append(f"{label}: shape {_shape(a.shape)}, expected a 2-D array")
        for p in (_dtype_problem(key, label, a), _nonfinite(key, label, a)):
            if p:
                problems.append(p)
    if not problems:
        problems += _check_dims(arrays, names)
    return problems


def _check_dims(arrays: Mapping[str, np.ndarray], names: tuple[str, ...]) -> list[str]:
    """Dimensions that must agree between fields (biases vs weights, factors, neurons)."""
    problems: list[str] = []

    def get(field: str, ds: str | None = None) -> np.ndarray | None:
        return arrays.get(_BY_NAME[field].hdf5_key(ds))

    for f in FIELDS:
        if not f.name.endswith("_b"):
            continue
        w_name = f.name[:-2] + "_W"
        if w_name not in _BY_NAME:
            continue
        for ds in names if f.per_dataset else [None]:
            b, w = get(f.name, ds), get(w_name, ds)
            if b is not None and w is not None and b.shape != (1, w.shape[1]):
                problems.append(
                    f"{f.name} ({f.hdf5_key(ds)}): shape {_shape(b.shape)}, expected "
                    f"{_shape((1, w.shape[1]))} to match {w_name}"
                )
    fac = get("gen_to_factors_W")
    if fac is not None:
        n_fac = fac.shape[1]
        for ds in names:
            for name, axis in (
                ("factors_to_logrates_W", 0),
                ("factors_to_means_W", 0),
                ("factors_to_logvars_W", 0),
                ("x_to_infac_W", 1),
            ):
                a = get(name, ds)
                if a is not None and a.shape[axis] != n_fac:
                    problems.append(
                        f"{name} ({_BY_NAME[name].hdf5_key(ds)}): shape {_shape(a.shape)} "
                        f"does not have {n_fac} factors (gen_to_factors_W is "
                        f"{_shape(fac.shape)})"
                    )
            rin, rout = get("x_to_infac_W", ds), get("factors_to_logrates_W", ds)
            if rout is None:
                rout = get("factors_to_means_W", ds)
            if rin is not None and rout is not None and rin.shape[0] != rout.shape[1]:
                problems.append(
                    f"dataset {ds}: read-in has {rin.shape[0]} neurons but read-out has "
                    f"{rout.shape[1]}"
                )
    return problems
