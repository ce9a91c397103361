"""``RunParams``: LFADS hyperparameters plus data-preparation settings, with MATLAB hashes.

Every property of lfads-run-manager's ``LFADS.RunParams`` is a field here, with its
MATLAB name, MATLAB class and default (shared/spec/run-manager.md §3). The two
folder hashes (``param_XXXXXX``, ``data_XXXXXX``) are computed exactly as MATLAB
does (§4), so collections made by the MATLAB tool open unchanged.

Python names: ``c_*`` properties keep their names; the others are snake_case
(``spikeBinMs`` -> ``spike_bin_ms``). Every API that takes names (constructor
keywords in :meth:`RunParams.from_mapping`, :meth:`with_changes`, :meth:`sweep`,
YAML) accepts both spellings.
"""

from __future__ import annotations

import difflib
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import attrs

from ._coerce import to_bool, to_float, to_int
from .exceptions import ConfigError
from .hashing import MValue, short_hash
from .hparams import Hyperparameters
from .layout import POSTERIOR_KINDS

__all__ = ["RunParams", "ParamField", "param_field", "param_fields", "DEFAULT_VERSION"]

DEFAULT_VERSION = 20171107
UINT_MAX = {"uint16": 65535, "uint32": 4294967295}

# Never hashed (spec §4.1): version, name, and the posterior/debug settings.
_DEBUG_FLAGS = {
    "c_tf_debug_cli",
    "c_tf_debug_tensorboard",
    "c_tf_debug_tensorboard_hostport",
    "c_tf_debug_dump_root",
    "c_debug_verbose",
    "c_debug_reduce_timesteps_to",
    "c_debug_print_each_step",
}
_NOT_IN_PARAM_HASH = _DEBUG_FLAGS | {
    "version",
    "name",
    "num_samples_posterior",
    "posterior_mean_kind",
}


@attrs.frozen
class ParamField:
    """Facts about one RunParams property (read from the attrs field metadata)."""

    name: str  #: Python attribute name
    matlab_name: str
    matlab_class: str  #: uint16, uint32, double, logical, char, cell
    default: Any
    doc: str
    hidden: bool  #: MATLAB Hidden property (flag only when it differs from the default)
    root: bool  #: declared by lfads_runs.RunParams itself (not a subclass)
    scale: str | None  #: "start" or "increase": multiplied by the number of datasets
    choices: tuple[str, ...] | None
    minimum: float | None  #: smallest allowed value (inclusive), None = no bound
    exclusive_min: bool  #: value must be strictly greater than ``minimum``
    extension: bool  #: an lfads_runs extension, not a MATLAB property

    @property
    def is_flag(self) -> bool:
        """Emitted as a ``--flag`` on run_lfads.py's command line."""
        return self.matlab_name.startswith("c_")

    @property
    def flag_name(self) -> str:
        return self.matlab_name[2:]

    @property
    def in_param_hash(self) -> bool:
        return self.name not in _NOT_IN_PARAM_HASH

    def in_data_hash(self, version: int) -> bool:
        """Whether this property can enter the data hash (spec §4.1)."""
        if not self.in_param_hash:
            return False
        if self.root and self.matlab_name.startswith("c_"):
            return self.matlab_name == "c_factors_dim" and version >= 20171107
        return True


# ---------------------------------------------------------------- coercion
def _coerce(cls: str, value: Any, *, untyped: bool = False) -> Any:
    """Coerce one value to its MATLAB class; raise ValueError with the reason."""
    if value is None:
        return None
    # The spellings accepted are lfads_runs._coerce's, shared with Hyperparameters.
    if cls in UINT_MAX:
        value = to_int(value)
        if not 0 <= value <= UINT_MAX[cls]:
            raise ValueError(f"expected an integer in [0, {UINT_MAX[cls]}] ({cls}), got {value}")
        return value
    if cls == "double":
        # inf, -inf, NaN (and 1e400, which YAML reads as inf) would reach the hash, the
        # JSON of params.json and TensorFlow flags; nothing in LFADS means them.
        return to_float(value, finite=True)
    if cls == "logical":
        return to_bool(value)
    if cls == "char":
        if isinstance(value, str):
            return value
        raise ValueError(f"expected a string, got {type(value).__name__} {value!r}")
    if cls == "cell":
        if isinstance(value, str) or not isinstance(value, Iterable):
            raise ValueError(f"expected a list, got {value!r}")
        items = tuple(value)
        for item in items:
            if not isinstance(item, str | int | float | bool):
                raise ValueError(f"list items must be strings, numbers or booleans, got {item!r}")
        return items
    raise ValueError(f"unknown MATLAB class {cls}")


def param_field(
    matlab: str | None,
    cls: str,
    default: Any,
    doc: str = "",
    *,
    hidden: bool = False,
    scale: str | None = None,
    choices: Sequence[str] | None = None,
    minimum: float | None = None,
    exclusive_min: bool = False,
    untyped: bool = False,
    extension: bool = False,
    root: bool = False,
) -> Any:
    """Declare a RunParams property (use it in subclasses to add your own).

    ``matlab`` is the MATLAB property name (``None``: same as the Python name),
    ``cls`` its MATLAB class (``uint16``, ``uint32``, ``double``, ``logical``,
    ``char``, ``cell``), which decides coercion and the hash bytes. Subclass
    properties enter both hashes when they differ from their default, as in MATLAB.
    """

    def convert(v: Any, field: attrs.Attribute) -> Any:
        try:
            return _coerce(cls, v, untyped=untyped)
        except ValueError as exc:
            raise ConfigError(f"invalid value for {field.name}: {exc}") from None

    meta = dict(
        matlab_name=matlab,
        matlab_class=cls,
        doc=doc,
        hidden=hidden,
        scale=scale,
        choices=tuple(choices) if choices else None,
        minimum=minimum,
        exclusive_min=exclusive_min,
        extension=extension,
        root=root,
    )
    return attrs.field(
        default=default,
        converter=attrs.Converter(convert, takes_field=True),
        metadata={"lfads": meta},
    )


def _p(*args: Any, **kw: Any) -> Any:
    return param_field(*args, root=True, **kw)


@attrs.frozen(kw_only=True)
class RunParams:
    """Hyperparameters of one LFADS parameter set (MATLAB ``LFADS.RunParams``).

    Values are coerced by their declared MATLAB class at construction: integers
    accept ``150``, ``150.0`` or ``"150"``; doubles accept ``"1e-3"``; logicals
    accept ``true``/``false``/``yes``/``no``/``on``/``off``/``1``/``0``, the same
    spellings as :class:`~lfads_runs.hparams.Hyperparameters` (``lfads_runs._coerce``).
    Anything else raises
    :class:`~lfads_runs.ConfigError` naming the field.
    """

    name: str = _p("name", "char", "", "display name only; never hashed")
    version: int = _p(
        "version",
        "uint32",
        DEFAULT_VERSION,
        "RunParams version; < 20171107 leaves c_factors_dim out of the data hash",
    )
    spike_bin_ms: float = _p(
        "spikeBinMs", "double", 2.0, "output bin width in ms", minimum=0, exclusive_min=True
    )
    c_allow_gpu_growth: bool = _p(None, "logical", True, "let TensorFlow grow GPU memory")
    c_max_ckpt_to_keep: int = _p(None, "uint16", 5, "regular checkpoints kept", minimum=1)
    c_max_ckpt_to_keep_lve: int = _p(
        None, "uint16", 5, "lowest-validation-error checkpoints kept", minimum=1
    )
    c_device: str = _p(None, "char", "/gpu:0", "TensorFlow device string")
    c_learning_rate_init: float = _p(
        None, "double", 0.01, "initial learning rate", minimum=0, exclusive_min=True
    )
    c_learning_rate_decay_factor: float = _p(
        None, "double", 0.98, "learning-rate decay factor", minimum=0, exclusive_min=True
    )
    c_learning_rate_n_to_compare: int = _p(
        None, "uint16", 6, "epochs compared for learning-rate decay", minimum=1
    )
    c_learning_rate_stop: float = _p(
        None, "double", 0.00001, "training stops when the learning rate falls below this", minimum=0
    )
    c_max_grad_norm: float = _p(
        None, "double", 200.0, "global gradient-norm clip", minimum=0, exclusive_min=True
    )
    train_to_test_ratio: int = _p(
        "trainToTestRatio",
        "uint16",
        4,
        "train/valid split: every (ratio+1)-th trial is validation",
        minimum=1,
    )
    c_batch_size: int = _p(None, "uint16", 256, "trials per batch", minimum=1)
    c_cell_clip_value: float = _p(
        None, "double", 5.0, "recurrent state clip", minimum=0, exclusive_min=True
    )
    c_temporal_spike_jitter_width: int = _p(None, "uint16", 0, "spike jitter width in bins")
    c_keep_prob: float = _p(
        None, "double", 0.95, "dropout keep probability", minimum=0, exclusive_min=True
    )
    c_l2_gen_scale: float = _p(None, "double", 500.0, "L2 scale of the generator", minimum=0)
    c_l2_con_scale: float = _p(None, "double", 500.0, "L2 scale of the controller", minimum=0)
    c_co_mean_corr_scale: float = _p(
        None, "double", 0.0, "correlation cost of controller outputs", minimum=0
    )
    c_kl_ic_weight: float = _p(None, "double", 1.0, "KL weight of the initial condition", minimum=0)
    c_kl_co_weight: float = _p(None, "double", 1.0, "KL weight of the inferred inputs", minimum=0)
    c_kl_start_step: int = _p(None, "uint32", 0, "step where the KL ramp starts", scale="start")
    c_kl_increase_steps: int = _p(None, "uint32", 900, "steps of the KL ramp", scale="increase")
    c_l2_start_step: int = _p(None, "uint32", 0, "step where the L2 ramp starts", scale="start")
    c_l2_increase_steps: int = _p(None, "uint32", 900, "steps of the L2 ramp", scale="increase")
    scale_increase_steps_with_datasets: bool = _p(
        "scaleIncreaseStepsWithDatasets",
        "logical",
        True,
        "multiply the ramp lengths by the number of datasets",
    )
    scale_start_step_with_datasets: bool = _p(
        "scaleStartStepWithDatasets",
        "logical",
        True,
        "multiply the ramp start steps by the number of datasets",
    )
    c_ext_input_dim: int = _p(None, "uint16", 0, "external input dimension")
    c_inject_ext_input_to_gen: bool = _p(
        None, "logical", False, "feed external inputs to the generator"
    )
    c_co_dim: int = _p(None, "uint16", 4, "controller outputs (inferred inputs); 0 = none")
    c_prior_ar_atau: float = _p(
        None, "double", 10.0, "AR(1) prior time constant (bins)", minimum=0, exclusive_min=True
    )
    c_do_train_prior_ar_atau: bool = _p(None, "logical", True, "train the AR(1) time constant")
    c_prior_ar_nvar: float = _p(
        None, "double", 0.1, "AR(1) prior noise variance", minimum=0, exclusive_min=True
    )
    c_do_train_prior_ar_nvar: bool = _p(None, "logical", True, "train the AR(1) noise variance")
    c_do_causal_controller: bool = _p(
        None, "logical", False, "causal controller (no reverse encoder)"
    )
    c_do_feed_factors_to_controller: bool = _p(
        None, "logical", True, "feed factors (or rates) back to the controller"
    )
    c_feedback_factors_or_rates: str = _p(
        None, "char", "factors", "controller feedback", choices=("factors", "rates")
    )
    c_controller_input_lag: int = _p(None, "uint16", 1, "controller input lag in bins")
    c_ci_enc_dim: int = _p(None, "uint16", 128, "controller-input encoder units", minimum=1)
    c_con_dim: int = _p(None, "uint16", 128, "controller units", minimum=1)
    c_co_prior_var_scale: float = _p(
        None, "double", 0.1, "accepted but unused by LFADS", untyped=True
    )
    c_num_steps_for_gen_ic: int = _p(
        None, "uint32", 4294967295, "time steps the IC encoder reads (capped at T)", minimum=1
    )
    c_ic_dim: int = _p(None, "uint16", 64, "dimension of g0; 0 = learned generator start state")
    c_ic_enc_dim: int = _p(None, "uint16", 128, "IC encoder units", minimum=1)
    c_ic_prior_var_min: float = _p(None, "double", 0.1, "g0 prior variance minimum", minimum=0)
    c_ic_prior_var_scale: float = _p(
        None, "double", 0.1, "g0 prior variance initial value", minimum=0, exclusive_min=True
    )
    c_ic_prior_var_max: float = _p(None, "double", 0.1, "g0 prior variance maximum", minimum=0)
    c_ic_post_var_min: float = _p(None, "double", 0.0001, "g0 posterior variance floor", minimum=0)
    c_cell_weight_scale: float = _p(
        None, "double", 1.0, "encoder/controller weight scale", minimum=0, exclusive_min=True
    )
    c_gen_dim: int = _p(None, "uint16", 100, "generator units", minimum=1)
    c_gen_cell_input_weight_scale: float = _p(
        None, "double", 1.0, "generator input weight scale", minimum=0
    )
    c_gen_cell_rec_weight_scale: float = _p(
        None, "double", 1.0, "generator recurrent weight scale", minimum=0
    )
    c_factors_dim: int = _p(None, "uint16", 50, "factors", minimum=1)
    c_output_dist: str = _p(
        None, "char", "poisson", "observation model", choices=("poisson", "gaussian")
    )
    c_do_train_readin: bool = _p(None, "logical", True, "train the read-in matrices")
    use_alignment_matrix: bool = _p(
        "useAlignmentMatrix",
        "logical",
        False,
        "PCA alignment matrices for multi-dataset (stitched) runs",
    )
    use_single_dataset_alignment_matrix: bool = _p(
        "useSingleDatasetAlignmentMatrix", "logical", False, "PCA read-in for single-dataset runs"
    )
    alignment_approach: str = _p(
        "alignmentApproach",
        "char",
        "regressGlobalPCs",
        "alignment regression",
        choices=("regressGlobalPCs", "ridgeRegressGlobalPCs"),
    )
    alignment_extra_args: tuple = _p(
        "alignmentExtraArgs", "cell", (), "extra arguments for the alignment tool"
    )
    posterior_mean_kind: str = _p(
        "posterior_mean_kind",
        "char",
        "posterior_sample_and_average",
        "posterior kind used for posterior means",
        choices=POSTERIOR_KINDS,
    )
    num_samples_posterior: float = _p(
        "num_samples_posterior",
        "double",
        512.0,
        "posterior samples per trial",
        minimum=1,
        untyped=True,
    )
    c_tf_debug_cli: bool = _p(None, "logical", False, "TensorFlow debugger CLI (tfdebug branch)")
    c_tf_debug_tensorboard: bool = _p(
        None, "logical", False, "TensorFlow debugger in TensorBoard (tfdebug branch)"
    )
    c_tf_debug_tensorboard_hostport: str = _p(
        None, "char", "localhost:6064", "TensorBoard debugger host:port"
    )
    c_tf_debug_dump_root: str = _p(
        None, "char", "", "debugger dump folder; omitted while empty", untyped=True
    )
    c_debug_verbose: bool = _p(None, "logical", False, "verbose debugging", untyped=True)
    c_debug_reduce_timesteps_to: float | None = _p(
        None, "double", None, "debug: truncate time steps; omitted while empty", untyped=True
    )
    c_debug_print_each_step: bool = _p(None, "logical", False, "print every step", untyped=True)
    c_in_factors_dim: int = _p(None, "uint16", 50, "retired", hidden=True)
    set_in_factors_match_data_for_single_dataset: bool = _p(
        "setInFactorsMatchDataForSingleDataset", "logical", False, "retired", hidden=True
    )
    # lfads_runs extensions: unset (None) by default, so they are hashed only when set.
    max_epochs: int | None = _p(
        "c_max_epochs",
        "uint32",
        None,
        "lfads_runs: stop after this many epochs",
        minimum=1,
        extension=True,
    )
    max_train_seconds: float | None = _p(
        "c_max_train_seconds",
        "double",
        None,
        "lfads_runs: stop training after this many seconds",
        minimum=0,
        exclusive_min=True,
        extension=True,
    )

    # AutoLFADS extensions (docs/autolfads.md): the defaults are TF LFADS, and a field
    # enters the hash and the flags only when it differs from its default.
    cd_rate: float = _p(
        "c_cd_rate",
        "double",
        0.0,
        "lfads_runs: coordinated dropout, fraction of input elements hidden per step, [0, 1)",
        minimum=0,
        extension=True,
    )
    cd_pass_rate: float = _p(
        "c_cd_pass_rate",
        "double",
        0.0,
        "lfads_runs: fraction of seen elements whose cost still counts under CD, [0, 1]",
        minimum=0,
        extension=True,
    )
    sv_rate: float = _p(
        "c_sv_rate",
        "double",
        0.0,
        "lfads_runs: sample validation, fraction of elements held out of input and cost, [0, 1)",
        minimum=0,
        extension=True,
    )
    sv_seed: int = _p(
        "c_sv_seed", "uint32", 0, "lfads_runs: seed of the sample-validation mask", extension=True
    )
    fp_len: int = _p(
        "c_fp_len",
        "uint32",
        0,
        "lfads_runs: forward prediction, last bins of each trial predicted but not encoded",
        extension=True,
    )

    _fields_cache: ClassVar[dict[type, tuple[ParamField, ...]]] = {}

    def __attrs_post_init__(self) -> None:
        problems = []
        for f in param_fields(type(self)):
            v = getattr(self, f.name)
            if v is None:
                continue
            if f.choices and v not in f.choices:
                problems.append(f"{f.name} must be one of {', '.join(f.choices)}; got {v!r}")
            if f.minimum is not None and isinstance(v, int | float) and not isinstance(v, bool):
                bad = v <= f.minimum if f.exclusive_min else v < f.minimum
                if bad or (isinstance(v, float) and math.isnan(v)):
                    op = ">" if f.exclusive_min else ">="
                    problems.append(f"{f.name} must be {op} {f.minimum:g}; got {v!r}")
        for name in ("cd_rate", "sv_rate"):
            if getattr(self, name) >= 1:
                problems.append(f"{name} must be < 1; got {getattr(self, name)!r}")
        if self.cd_pass_rate > 1:
            problems.append(f"cd_pass_rate must be <= 1; got {self.cd_pass_rate!r}")
        if self.c_keep_prob > 1:
            problems.append(f"c_keep_prob must be <= 1; got {self.c_keep_prob!r}")
        if self.c_ic_prior_var_min > self.c_ic_prior_var_max:
            problems.append("c_ic_prior_var_min must be <= c_ic_prior_var_max")
        elif not self.c_ic_prior_var_min <= self.c_ic_prior_var_scale <= self.c_ic_prior_var_max:
            problems.append(
                "c_ic_prior_var_scale must lie between c_ic_prior_var_min and c_ic_prior_var_max"
            )
        if problems:
            raise ConfigError("invalid RunParams: " + "; ".join(problems))

    # ------------------------------------------------------------ construction
    @classmethod
    def fields(cls) -> tuple[ParamField, ...]:
        return param_fields(cls)

    @classmethod
    def resolve_name(cls, key: str) -> str:
        """Python name for a Python or MATLAB property name, or ConfigError with a suggestion."""
        table = _name_table(cls)
        if key in table:
            return table[key]
        close = difflib.get_close_matches(key, list(table), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown RunParams property {key!r}{hint}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> RunParams:
        """Build from a mapping whose keys may be Python or MATLAB names."""
        kw: dict[str, Any] = {}
        for key, value in values.items():
            name = cls.resolve_name(str(key))
            if name in kw:
                raise ConfigError(f"property {name!r} given twice (as {key!r} and another name)")
            kw[name] = value
        return _construct(cls, kw)

    def with_changes(self, **changes: Any) -> RunParams:
        """A copy with some properties changed (Python or MATLAB names)."""
        kw = {type(self).resolve_name(k): v for k, v in changes.items()}
        current = {f.name: getattr(self, f.name) for f in param_fields(type(self))}
        current.update(kw)
        return _construct(type(self), current)

    @classmethod
    def sweep(
        cls, base: RunParams | Mapping[str, Any] | None = None, **grids: Sequence[Any]
    ) -> list[RunParams]:
        """All combinations of ``grids`` applied to ``base``; the first property varies fastest.

        Like MATLAB ``RunParams.generateSweep('p1', v1, 'p2', v2)`` flattened in
        column-major order.
        """
        if base is None:
            base = cls()
        elif isinstance(base, Mapping):
            base = cls.from_mapping(base)
        if not grids:
            raise ConfigError("sweep needs at least one property with a list of values")
        names = [cls.resolve_name(k) for k in grids]
        lists = []
        for key, values in grids.items():
            if isinstance(values, str) or not isinstance(values, Sequence):
                values = [values]
            if len(values) == 0:
                raise ConfigError(f"sweep over {key!r} has no values")
            lists.append(list(values))
        out = []
        # itertools.product varies the last factor fastest; reverse to make the first fastest.
        for combo in itertools.product(*reversed(lists)):
            out.append(base.with_changes(**dict(zip(names, reversed(combo), strict=True))))
        return out

    # ------------------------------------------------------------ hashing
    def _mvalue(self, f: ParamField) -> MValue:
        v = getattr(self, f.name)
        if f.matlab_class == "cell":
            return MValue("cell", [_cell_item(x) for x in v])
        return MValue(f.matlab_class, v)

    def _differs(self, f: ParamField) -> bool:
        v = getattr(self, f.name)
        d = f.default
        if isinstance(v, float) and math.isnan(v):
            return True  # NaN never equals NaN in MATLAB's isequal
        if v is None or (isinstance(v, str | tuple) and len(v) == 0):
            return not (d is None or (isinstance(d, str | tuple) and len(d) == 0))
        return v != d

    # ------------------------------------------------------------ hash control (override these)
    def properties_not_affecting_hash(self) -> frozenset[str]:
        """Properties left out of the param hash whatever their value (MATLAB
        ``getListPropertiesNotAffectingHash``).

        A subclass adds its own (Python or MATLAB names) as MATLAB subclasses did:
        ``return super().properties_not_affecting_hash() | {"myLabel"}``; they are
        then left out of the data hash too, as in MATLAB.
        """
        return frozenset(_NOT_IN_PARAM_HASH)

    def properties_not_affecting_input_data_hash(self) -> frozenset[str]:
        """Properties left out of the data hash (MATLAB ``getListPropertiesNotAffectingInputDataHash``):
        every ``c_`` property of RunParams itself (``c_factors_dim`` only when
        ``version`` < 20171107) and :meth:`properties_not_affecting_hash`."""
        own = {
            f.name
            for f in param_fields(RunParams)
            if f.matlab_name.startswith("c_")
            and not (f.matlab_name == "c_factors_dim" and self.version >= 20171107)
        }
        return frozenset(own) | self.properties_not_affecting_hash()

    def properties_scale_with_num_datasets(self) -> frozenset[str]:
        """Properties multiplied by the number of datasets in a run's flags (MATLAB
        ``getListPropertiesScaleWithNumDatasets``): the KL/L2 ramp steps when
        ``scale_increase_steps_with_datasets`` / ``scale_start_step_with_datasets``."""
        out = set()
        for f in param_fields(type(self)):
            if (f.scale == "increase" and self.scale_increase_steps_with_datasets) or (
                f.scale == "start" and self.scale_start_step_with_datasets
            ):
                out.add(f.name)
        return frozenset(out)

    def _python_names(self, names: Iterable[str], method: str) -> set[str]:
        table = _name_table(type(self))
        unknown = sorted(n for n in names if n not in table and n not in _NOT_IN_PARAM_HASH)
        if unknown:
            raise ConfigError(
                f"{type(self).__qualname__}.{method}() names unknown properties {unknown}"
            )
        return {table.get(n, n) for n in names}

    def hash_struct(self, kind: str = "param") -> dict[str, MValue]:
        """The MATLAB struct hashed for ``kind`` ``"param"`` or ``"data"`` (non-defaults only)."""
        if kind == "param":
            ignore = self._python_names(
                self.properties_not_affecting_hash(), "properties_not_affecting_hash"
            )
        else:
            ignore = self._python_names(
                self.properties_not_affecting_input_data_hash(),
                "properties_not_affecting_input_data_hash",
            )
        out = {}
        for f in param_fields(type(self)):
            if f.name not in ignore and f.name not in ("name", "version") and self._differs(f):
                out[f.matlab_name] = self._mvalue(f)
        return out

    @property
    def param_hash(self) -> str:
        """``param_XXXXXX``: the folder name of this parameter set (MATLAB ``paramHashString``)."""
        return "param_" + short_hash(MValue("struct", self.hash_struct("param")))

    @property
    def data_hash(self) -> str:
        """``data_XXXXXX``: the shared input-data folder (MATLAB ``dataHashString``)."""
        return "data_" + short_hash(MValue("struct", self.hash_struct("data")))

    def __eq__(self, other: object) -> bool:  # MATLAB: equality of param hashes
        if not isinstance(other, RunParams):
            return NotImplemented
        return self.param_hash == other.param_hash

    def __hash__(self) -> int:
        return hash(self.param_hash)

    # ------------------------------------------------------------ display
    def differences(self) -> dict[str, Any]:
        """Non-default properties (param-hash ones) by MATLAB name, in declaration order."""
        ignore = self._python_names(
            self.properties_not_affecting_hash(), "properties_not_affecting_hash"
        )
        return {
            f.matlab_name: getattr(self, f.name)
            for f in param_fields(type(self))
            if f.name not in ignore and f.name not in ("name", "version") and self._differs(f)
        }

    def short_differences(self) -> str:
        """Like MATLAB ``generateShortDifferencesString``: ``prop=value ...`` or ``default``."""
        diffs = self.differences()
        if not diffs:
            return "default"
        fields = {f.matlab_name: f for f in param_fields(type(self))}
        return " ".join(f"{k}={_display(fields[k], v)}" for k, v in diffs.items())

    def summary_text(self, indent: str = "", index: int | None = None) -> str:
        """Like MATLAB ``generateSummaryText``: header, differences, every property."""
        idx = "" if index is None else f"{index} "
        lines = [
            f"{indent}[{idx}{self.param_hash} {self.data_hash}] "
            f'{type(self).__name__} "{self.name}"',
            f"{indent}  {self.short_differences()}",
        ]
        for f in param_fields(type(self)):
            if f.name in ("name",):
                continue
            lines.append(f"{indent}  {f.matlab_name}: {_display(f, getattr(self, f.name))}")
        return "\n".join(lines)

    def as_dict(self, names: str = "python") -> dict[str, Any]:
        """All properties; ``names="matlab"`` keys them by MATLAB name. JSON-friendly."""
        out = {}
        for f in param_fields(type(self)):
            v = getattr(self, f.name)
            out[f.name if names == "python" else f.matlab_name] = (
                list(v) if isinstance(v, tuple) else v
            )
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.param_hash}: {self.short_differences()})"

    # ------------------------------------------------------------ LFADS flags
    def lfads_flags(self, n_datasets: int, omit: Iterable[str] = ()) -> list[str]:
        """run_lfads.py flags as MATLAB ``generateCommandLineOptionsString`` builds them.

        Every non-hidden ``c_`` property is emitted (hidden ones only when they
        differ from their default), empty values are skipped, ramp steps are
        multiplied by ``n_datasets`` when the scaling switches are on, and floats
        are printed losslessly (``repr``), unlike MATLAB's ``%f``.
        """
        omit = {type(self).resolve_name(o) for o in omit}
        flags = []
        for f in param_fields(type(self)):
            if not f.is_flag or f.name in omit:
                continue
            # Hidden flags, and the debug flags only a fork of run_lfads.py defines
            # (MATLAB always emits those: a defect), only when they differ.
            # Extensions only when set: run_lfads.py does not know them.
            if (f.hidden or f.extension or f.name in _DEBUG_FLAGS) and not self._differs(f):
                continue
            v = self._flag_value(f, n_datasets)
            if v is None or (isinstance(v, str) and v == ""):
                continue
            flags.append(f"--{f.flag_name}={_format_flag(f, v)}")
        return flags

    def _flag_value(self, f: ParamField, n_datasets: int) -> Any:
        v = getattr(self, f.name)
        if v is not None and f.name in self._python_names(
            self.properties_scale_with_num_datasets(), "properties_scale_with_num_datasets"
        ):
            v = v * n_datasets
        return v

    def to_hparams(self, n_datasets: int, **overrides: Any) -> Hyperparameters:
        """The LFADS hyperparameters a run with ``n_datasets`` datasets trains with."""
        hp_names = {a.name for a in attrs.fields(Hyperparameters)}
        values: dict[str, Any] = {}
        for f in param_fields(type(self)):
            if f.is_flag and f.flag_name in hp_names:
                v = self._flag_value(f, n_datasets)
                if v is not None:
                    values[f.flag_name] = v
        values["device"] = self.c_device.lstrip("/")
        values.update(overrides)
        return Hyperparameters.from_mapping(values)


# ---------------------------------------------------------------- helpers
def _construct(cls: type[RunParams], kw: dict[str, Any]) -> RunParams:
    try:
        return cls(**kw)
    except TypeError as exc:
        raise ConfigError(f"invalid RunParams: {exc}") from exc


def param_fields(cls: type = RunParams) -> tuple[ParamField, ...]:
    """The ParamField table of a RunParams class (subclass fields included, in order)."""
    cache = RunParams._fields_cache
    if cls not in cache:
        out = []
        for a in attrs.fields(cls):
            meta = dict(a.metadata.get("lfads", {}))
            if not meta:  # a subclass field declared with plain attrs.field
                meta = dict(
                    matlab_name=a.name,
                    matlab_class=_guess_class(a.default),
                    doc="",
                    hidden=False,
                    scale=None,
                    choices=None,
                    minimum=None,
                    exclusive_min=False,
                    extension=False,
                    root=False,
                )
            meta["matlab_name"] = meta["matlab_name"] or a.name
            out.append(ParamField(name=a.name, default=a.default, **meta))
        cache[cls] = tuple(out)
    return cache[cls]


def _guess_class(default: Any) -> str:
    if isinstance(default, bool):
        return "logical"
    if isinstance(default, int):
        return "uint32"
    if isinstance(default, float):
        return "double"
    if isinstance(default, str):
        return "char"
    if isinstance(default, tuple | list):
        return "cell"
    raise TypeError(f"cannot infer the MATLAB class of a default {default!r}; use param_field()")


def _name_table(cls: type) -> dict[str, str]:
    table = {}
    for f in param_fields(cls):
        table[f.name] = f.name
        table[f.matlab_name] = f.name
    return table


def _cell_item(x: Any) -> MValue:
    if isinstance(x, bool):
        return MValue("logical", x)
    if isinstance(x, int | float):
        return MValue("double", float(x))
    return MValue("char", str(x))


def _format_flag(f: ParamField, v: Any) -> str:
    if f.matlab_class == "logical":
        return "true" if v else "false"
    if f.matlab_class in UINT_MAX:
        return str(int(v))
    if f.matlab_class == "double":
        fv = float(v)
        return str(int(fv)) if fv.is_integer() and abs(fv) < 1e15 else repr(fv)
    if f.matlab_class == "char":
        return str(v)
    raise ConfigError(f"{f.name} (class {f.matlab_class}) cannot be passed as a flag")


def _display(f: ParamField, v: Any) -> str:
    """MATLAB ``serializePropertyValue``-like text."""
    if v is None:
        return "[]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, tuple):
        return "{" + ", ".join(_display(f, x) for x in v) + "}"
    return str(v)
