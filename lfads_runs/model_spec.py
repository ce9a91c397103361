"""Which LFADS variables a configuration has, with their TensorFlow names and shapes.

One table, derived from :class:`~lfads_runs.hparams.Hyperparameters` and the
datasets, serves the engine (to create parameters), the ``model_params`` and
checkpoint code (to validate and to write) and the documentation. Facts:
shared/spec/lfads-model.md §2-§6.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import attrs

from .hparams import Hyperparameters
from .layout import lfads_dataset_name  # re-exported: LFADS names datasets in layout

__all__ = [
    "DatasetSpec",
    "VarSpec",
    "ModelSpec",
    "hdf5_key",
    "adam_slot_names",
    "lfads_dataset_name",
    "SCALAR_VARIABLES",
    "VARIABLE_GROUPS",
    "TF_NAMES",
    "tf_name",
]

#: Non-trainable scalars every checkpoint holds.
SCALAR_VARIABLES = (
    "LFADS/global_step",
    "LFADS/learning_rate",
    "LFADS/beta1_power",
    "LFADS/beta2_power",
)


def hdf5_key(tf_name: str) -> str:
    """Key of a variable in ``model_params``: ``/`` -> ``_`` plus ``:0``."""
    return tf_name.replace("/", "_") + ":0"


def adam_slot_names(tf_name: str) -> tuple[str, str]:
    """Checkpoint names of the Adam first and second moment of a variable."""
    return f"LFADS/{tf_name}/Adam", f"LFADS/{tf_name}/Adam_1"


def _gru_names(prefix: str, scope: str, t0: str, gates: str) -> list[tuple[str, str]]:
    return [
        (f"{prefix}_t0", f"LFADS/{scope}/{t0}"),
        (f"{prefix}_gru_{gates}_W", f"LFADS/{scope}/GRU/Gates/xh_2_ru/W"),
        (f"{prefix}_gru_{gates}_b", f"LFADS/{scope}/GRU/Gates/xh_2_ru/b"),
        (f"{prefix}_gru_xrh_to_c_W", f"LFADS/{scope}/GRU/Candidate/xrh_2_c/W"),
        (f"{prefix}_gru_xrh_to_c_b", f"LFADS/{scope}/GRU/Candidate/xrh_2_c/b"),
    ]


def _gengru_names(prefix: str, scope: str) -> list[tuple[str, str]]:
    base = f"LFADS/{scope}/GenGRU"
    return [
        (f"{prefix}_gengru_x_to_ru_W", f"{base}/Gates/x_2_ru/W"),
        (f"{prefix}_gengru_h_to_ru_W", f"{base}/Gates/h_2_ru/W"),
        (f"{prefix}_gengru_h_to_ru_b", f"{base}/Gates/h_2_ru/b"),
        (f"{prefix}_gengru_x_to_c_W", f"{base}/Candidate/x_2_c/W"),
        (f"{prefix}_gengru_rh_to_c_W", f"{base}/Candidate/rh_2_c/W"),
        (f"{prefix}_gengru_rh_to_c_b", f"{base}/Candidate/rh_2_c/b"),
    ]


_GRUS = {
    "ic_enc_fwd": _gru_names("ic_enc_fwd", "ic_enc_fwd", "ic_enc_t0_fwd", "xh_to_gates_ru"),
    "ic_enc_rev": _gru_names("ic_enc_rev", "ic_enc_rev", "ic_enc_t0_rev", "xh_to_gates_ru"),
    "ci_enc_fwd": _gru_names("ci_enc_fwd", "ci_enc_fwd", "ci_enc_t0_fwd", "xh_to_ru"),
    "ci_enc_rev": _gru_names("ci_enc_rev", "ci_enc_rev", "ci_enc_t0_rev", "xh_to_ru"),
}
_GENGRUS = {"con": _gengru_names("con", "con"), "gen": _gengru_names("gen", "gen")}

#: lfads-run-manager's field name -> TensorFlow variable name (``{ds}``: the LFADS
#: dataset name), grouped as the MATLAB class displays them. The one declaration of
#: the model's variable names: :class:`ModelSpec` names its variables from it and
#: :class:`~lfads_runs.trained_params.ModelTrainedParameters` reads checkpoints by it.
VARIABLE_GROUPS: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "Read-in from spikes to input factors",
        [
            ("x_to_infac_W", "LFADS/x_2_infac_{ds}/W"),
            ("x_to_infac_b", "LFADS/x_2_infac_{ds}/b"),
        ],
    ),
    (
        "Initial condition encoder (forward)",
        _GRUS["ic_enc_fwd"],
    ),
    (
        "Initial condition encoder (reverse)",
        _GRUS["ic_enc_rev"],
    ),
    (
        "Initial condition g0",
        [
            ("prior_g0_mean", "LFADS/z/prior_g0/mean"),
            ("prior_g0_logvar", "LFADS/z/prior_g0/logvar"),
            ("ic_enc_to_posterior_g0_mean_W", "LFADS/z/ic_enc_2_post_g0/mean/W"),
            ("ic_enc_to_posterior_g0_mean_b", "LFADS/z/ic_enc_2_post_g0/mean/b"),
            ("ic_enc_to_posterior_g0_logvar_W", "LFADS/z/ic_enc_2_post_g0/logvar/W"),
            ("ic_enc_to_posterior_g0_logvar_b", "LFADS/z/ic_enc_2_post_g0/logvar/b"),
            ("g0_to_gen_ic_W", "LFADS/gen/g0_2_gen_ic/W"),
            ("g0_to_gen_ic_b", "LFADS/gen/g0_2_gen_ic/b"),
            ("gen_g0", "LFADS/gen/g0"),
        ],
    ),
    (
        "Controller encoder (forward)",
        _GRUS["ci_enc_fwd"],
    ),
    (
        "Controller encoder (reverse)",
        _GRUS["ci_enc_rev"],
    ),
    ("Controller RNN", _GENGRUS["con"]),
    (
        "Controller output co",
        [
            ("prior_ar1_logevars", "LFADS/z/u_prior_ar1/logevars"),
            ("prior_ar1_logatau", "LFADS/z/u_prior_ar1/logatau"),
            ("con_co", "LFADS/con/c0"),
            ("con_to_posterior_co_mean_W", "LFADS/con/con_to_post_co/mean/W"),
            ("con_to_posterior_co_mean_b", "LFADS/con/con_to_post_co/mean/b"),
            ("con_to_posterior_co_logvar_W", "LFADS/con/con_to_post_co/logvar/W"),
            ("con_to_posterior_co_logvar_b", "LFADS/con/con_to_post_co/logvar/b"),
        ],
    ),
    ("Generator RNN", _GENGRUS["gen"]),
    (
        "Generator output and readout",
        [
            ("gen_to_factors_W", "LFADS/gen/gen_2_fac/W"),
            ("factors_to_logrates_W", "LFADS/glm/fac_2_logrates_{ds}/W"),
            ("factors_to_logrates_b", "LFADS/glm/fac_2_logrates_{ds}/b"),
            ("factors_to_means_W", "LFADS/glm/fac_2_means_{ds}/W"),
            ("factors_to_means_b", "LFADS/glm/fac_2_means_{ds}/b"),
            ("factors_to_logvars_W", "LFADS/glm/fac_2_logvars_{ds}/W"),
            ("factors_to_logvars_b", "LFADS/glm/fac_2_logvars_{ds}/b"),
        ],
    ),
]

TF_NAMES: dict[str, str] = {field: tf for _, rows in VARIABLE_GROUPS for field, tf in rows}


def tf_name(field: str, ds: str | None = None) -> str:
    """The TensorFlow name of a field (``ds``: the dataset of a per-dataset one)."""
    template = TF_NAMES[field]
    return template.format(ds=lfads_dataset_name(ds)) if ds is not None else template


@attrs.frozen
class DatasetSpec:
    """What the model needs to know about one dataset."""

    name: str = attrs.field(converter=lfads_dataset_name)  #: LFADS name, e.g. ``dataset001.h5``
    n_neurons: int = attrs.field(converter=int)
    has_alignment_matrix: bool = attrs.field(default=False, converter=bool)
    #: Held-in neurons (0-based, ascending) the encoders read (co-smoothing); None = all.
    #: The read-out always predicts every neuron.
    heldin: tuple[int, ...] | None = attrs.field(
        default=None, converter=attrs.converters.optional(lambda v: tuple(int(i) for i in v))
    )

    @property
    def n_encoded(self) -> int:
        """Neurons the read-in (or, without one, the encoders) see."""
        return self.n_neurons if self.heldin is None else len(self.heldin)


@attrs.frozen
class VarSpec:
    """One TensorFlow variable of the model."""

    name: str  #: checkpoint name, e.g. ``LFADS/gen/GenGRU/Gates/h_2_ru/W``
    shape: tuple[int, ...]
    trainable: bool
    group: str  #: display/ownership group, e.g. ``gen``, ``ic_enc_fwd``, ``readin``
    dataset: str | None = None  #: LFADS dataset name for per-dataset variables
    l2: str | None = None  #: ``gen`` or ``con`` when in an L2 collection
    init: str = "normal"  #: ``normal``, ``zeros``, ``const`` or ``alignment``
    init_scale: float = 0.0  #: std of the normal init, or the constant value
    io: bool = False  #: in the ``IO_transformations`` collection

    @property
    def hdf5_key(self) -> str:
        return hdf5_key(self.name)

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def _normal(fan_in: int, scale: float = 1.0) -> float:
    return scale / math.sqrt(fan_in)


@attrs.frozen
class ModelSpec:
    """The structure of one LFADS model: dimensions and its variable table."""

    hps: Hyperparameters
    datasets: tuple[DatasetSpec, ...] = attrs.field(converter=tuple)
    num_steps: int = attrs.field(converter=int)  #: T, time bins per trial

    def __attrs_post_init__(self) -> None:
        if not self.datasets:
            raise ValueError("a model needs at least one dataset")
        names = [d.name for d in self.datasets]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate dataset names: {names}")
        if self.num_steps < 2:
            raise ValueError(f"LFADS needs more than one time step, got T={self.num_steps}")
        if self.num_steps_encoded < 1:
            raise ValueError(
                f"fp_len = {self.hps.fp_len} forward-prediction bins leave no bin to encode "
                f"in trials of T = {self.num_steps} bins"
            )
        h = self.hps
        if (
            h.feedback_factors_or_rates == "rates"
            and self.has_controller
            and h.do_feed_factors_to_controller
            and len(self.datasets) > 1
        ):
            raise ValueError("rate feedback to the controller needs exactly one dataset")

    @classmethod
    def build(
        cls, hps: Hyperparameters, datasets: Iterable[DatasetSpec], num_steps: int
    ) -> ModelSpec:
        """Datasets are sorted by name, the order a port of LFADS should use (spec §7.1)."""
        return cls(hps, tuple(sorted(datasets, key=lambda d: d.name)), num_steps)

    # ---------------------------------------------------------------- dimensions
    @property
    def dataset_names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.datasets)

    @property
    def has_readin(self) -> bool:
        """Per-dataset read-in matrices exist (else the read-in is the identity)."""
        return len(self.datasets) > 1 or self.datasets[0].has_alignment_matrix

    @property
    def readin_dim(self) -> int:
        """F_in: width of the read-in output."""
        return self.hps.factors_dim if self.has_readin else self.datasets[0].n_encoded

    @property
    def ext_to_encoders(self) -> bool:
        return self.hps.ext_input_dim > 0 and not self.hps.inject_ext_input_to_gen

    @property
    def ext_to_gen(self) -> bool:
        return self.hps.ext_input_dim > 0 and self.hps.inject_ext_input_to_gen

    @property
    def encoder_input_dim(self) -> int:
        """E_in."""
        return self.readin_dim + (self.hps.ext_input_dim if self.ext_to_encoders else 0)

    @property
    def has_ic_encoder(self) -> bool:
        return self.hps.ic_dim > 0

    @property
    def has_controller(self) -> bool:
        return self.hps.co_dim > 0

    @property
    def has_g0_to_gen(self) -> bool:
        return self.hps.ic_dim > 0 and self.hps.ic_dim != self.hps.gen_dim

    @property
    def num_steps_for_gen_ic(self) -> int:
        return min(self.hps.num_steps_for_gen_ic, self.num_steps_encoded)

    @property
    def num_steps_encoded(self) -> int:
        """Bins the encoders read: T less the forward-prediction bins."""
        return self.num_steps - self.hps.fp_len

    @property
    def feedback_dim(self) -> int:
        h = self.hps
        if not h.do_feed_factors_to_controller:
            return 0
        if h.feedback_factors_or_rates == "rates":
            return self.datasets[0].n_neurons
        return h.factors_dim

    @property
    def controller_input_dim(self) -> int:
        """C_in."""
        h = self.hps
        return h.ci_enc_dim * (1 if h.do_causal_controller else 2) + self.feedback_dim

    @property
    def gen_input_dim(self) -> int:
        """G_in."""
        return self.hps.co_dim + (self.hps.ext_input_dim if self.ext_to_gen else 0)

    def has_readout_identity(self, ds: DatasetSpec) -> bool:
        return (
            self.hps.output_dist == "poisson"
            and len(self.datasets) == 1
            and self.hps.factors_dim == ds.n_neurons
        )

    def dataset(self, name: str) -> DatasetSpec:
        key = lfads_dataset_name(name)
        for d in self.datasets:
            if d.name == key:
                return d
        raise KeyError(f"no dataset {name!r} in this model; datasets are {self.dataset_names}")

    # ---------------------------------------------------------------- variables
    @property
    def variables(self) -> tuple[VarSpec, ...]:
        """Every model variable (not the scalars, not the Adam slots), in build order."""
        return tuple(self._variables())

    def _variables(self) -> Iterable[VarSpec]:
        h = self.hps
        V = VarSpec
        # Read-in, per dataset.
        if self.has_readin:
            for d in self.datasets:
                init = "alignment" if d.has_alignment_matrix else "normal"
                yield V(
                    tf_name("x_to_infac_W", d.name),
                    (d.n_encoded, h.factors_dim),
                    h.do_train_readin,
                    "readin",
                    d.name,
                    init=init,
                    init_scale=_normal(d.n_encoded),
                    io=h.do_train_readin,
                )
                yield V(
                    tf_name("x_to_infac_b", d.name),
                    (1, h.factors_dim),
                    h.do_train_readin,
                    "readin",
                    d.name,
                    init="alignment" if d.has_alignment_matrix else "zeros",
                    io=h.do_train_readin,
                )
        e_in = self.encoder_input_dim
        if self.has_ic_encoder:
            H = h.ic_enc_dim
            for direction in ("fwd", "rev"):
                yield from self._gru(f"ic_enc_{direction}", e_in, H)
            for what in ("mean", "logvar"):
                base = f"ic_enc_to_posterior_g0_{what}"
                W, b = tf_name(f"{base}_W"), tf_name(f"{base}_b")
                yield V(W, (2 * H, h.ic_dim), True, "g0", init_scale=_normal(2 * H))
                yield V(b, (1, h.ic_dim), True, "g0", init="zeros")
            yield V(tf_name("prior_g0_mean"), (1, h.ic_dim), True, "g0", init="zeros")
            yield V(
                tf_name("prior_g0_logvar"),
                (1, h.ic_dim),
                h.ic_prior_var_max > h.ic_prior_var_min,
                "g0",
                init="const",
                init_scale=math.log(h.ic_prior_var_scale),
            )
            if self.has_g0_to_gen:
                yield V(
                    tf_name("g0_to_gen_ic_W"),
                    (h.ic_dim, h.gen_dim),
                    True,
                    "g0",
                    init_scale=_normal(h.ic_dim),
                )
                yield V(tf_name("g0_to_gen_ic_b"), (1, h.gen_dim), True, "g0", init="zeros")
        else:
            yield V(tf_name("gen_g0"), (1, h.gen_dim), True, "g0", init="zeros")
        if self.has_controller:
            H = h.ci_enc_dim
            yield from self._gru("ci_enc_fwd", e_in, H)
            if not h.do_causal_controller:
                yield from self._gru("ci_enc_rev", e_in, H)
            C, U = h.con_dim, h.co_dim
            yield V(tf_name("con_co"), (1, C), True, "con", init="zeros")
            yield from self._gengru(
                "con", self.controller_input_dim, C, h.cell_weight_scale, h.cell_weight_scale
            )
            for what in ("mean", "logvar"):
                W, b = (
                    tf_name(f"con_to_posterior_co_{what}_W"),
                    tf_name(f"con_to_posterior_co_{what}_b"),
                )
                yield V(W, (C, U), True, "co", init_scale=_normal(C))
                yield V(b, (1, U), True, "co", init="zeros")
            yield V(
                tf_name("prior_ar1_logevars"),
                (1, U),
                h.do_train_prior_ar_nvar,
                "co",
                init="const",
                init_scale=math.log(h.prior_ar_nvar),
            )
            yield V(
                tf_name("prior_ar1_logatau"),
                (1, U),
                h.do_train_prior_ar_atau,
                "co",
                init="const",
                init_scale=math.log(h.prior_ar_atau),
            )
        yield from self._gengru(
            "gen",
            self.gen_input_dim,
            h.gen_dim,
            h.gen_cell_input_weight_scale,
            h.gen_cell_rec_weight_scale,
        )
        yield V(
            tf_name("gen_to_factors_W"),
            (h.gen_dim, h.factors_dim),
            True,
            "gen",
            init_scale=_normal(h.gen_dim),
        )
        F = h.factors_dim
        for d in self.datasets:
            if self.has_readout_identity(d):
                continue
            # Poisson log-rates, or Gaussian means: same shapes and initialisation.
            what = "logrates" if h.output_dist == "poisson" else "means"
            aligned = d.has_alignment_matrix
            yield V(
                tf_name(f"factors_to_{what}_W", d.name),
                (F, d.n_neurons),
                True,
                "readout",
                d.name,
                init="alignment" if aligned else "normal",
                init_scale=_normal(F),
                io=True,
            )
            yield V(
                tf_name(f"factors_to_{what}_b", d.name),
                (1, d.n_neurons),
                True,
                "readout",
                d.name,
                init="alignment" if aligned else "zeros",
                io=True,
            )
            if h.output_dist == "gaussian":
                yield V(
                    tf_name("factors_to_logvars_W", d.name),
                    (F, d.n_neurons),
                    True,
                    "readout",
                    d.name,
                    init="zeros",
                    io=True,
                )
                yield V(
                    tf_name("factors_to_logvars_b", d.name),
                    (1, d.n_neurons),
                    True,
                    "readout",
                    d.name,
                    init="const",
                    init_scale=1.0,
                    io=True,
                )

    def _gru(self, scope: str, n_in: int, H: int) -> Iterable[VarSpec]:
        s = self.hps.cell_weight_scale
        t0, gates_W, gates_b, cand_W, cand_b = (tf for _, tf in _GRUS[scope])
        yield VarSpec(t0, (1, H), True, scope, init="zeros")
        yield VarSpec(
            gates_W,
            (n_in + H, 2 * H),
            True,
            scope,
            init_scale=_normal(n_in + H, s),
        )
        yield VarSpec(gates_b, (1, 2 * H), True, scope, init="zeros")
        yield VarSpec(
            cand_W,
            (n_in + H, H),
            True,
            scope,
            init_scale=_normal(n_in + H),
        )
        yield VarSpec(cand_b, (1, H), True, scope, init="zeros")

    def _gengru(
        self, scope: str, n_in: int, H: int, s_in: float, s_rec: float
    ) -> Iterable[VarSpec]:
        x_ru_W, h_ru_W, h_ru_b, x_c_W, rh_c_W, rh_c_b = (tf for _, tf in _GENGRUS[scope])
        if n_in > 0:
            yield VarSpec(x_ru_W, (n_in, 2 * H), True, scope, init_scale=_normal(n_in, s_in))
        yield VarSpec(
            h_ru_W,
            (H, 2 * H),
            True,
            scope,
            l2=scope,
            init_scale=_normal(H, s_rec),
        )
        yield VarSpec(h_ru_b, (1, 2 * H), True, scope, l2=scope, init="zeros")
        if n_in > 0:
            yield VarSpec(x_c_W, (n_in, H), True, scope, init_scale=_normal(n_in, s_in))
        yield VarSpec(
            rh_c_W,
            (H, H),
            True,
            scope,
            l2=scope,
            init_scale=_normal(H, s_rec),
        )
        yield VarSpec(rh_c_b, (1, H), True, scope, l2=scope, init="zeros")

    # ---------------------------------------------------------------- updates
    def updated_variables(self) -> tuple[VarSpec, ...]:
        """Variables the optimiser updates, i.e. those with Adam slots (spec §4, §5)."""
        h = self.hps
        out = []
        for v in self.variables:
            if not v.trainable:
                continue
            if h.do_train_io_only and not v.io:
                continue
            if h.do_train_encoder_only and not (
                v.name.startswith("LFADS/ic_enc_") or v.name.startswith("LFADS/z/ic_enc_")
            ):
                continue
            out.append(v)
        return tuple(out)

    def checkpoint_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every tensor of a training checkpoint: variables, Adam slots and scalars."""
        shapes: dict[str, tuple[int, ...]] = {v.name: v.shape for v in self.variables}
        for v in self.updated_variables():
            m, s = adam_slot_names(v.name)
            shapes[m] = v.shape
            shapes[s] = v.shape
        for name in SCALAR_VARIABLES:
            shapes[name] = ()
        return shapes

    def l2_variables(self) -> tuple[VarSpec, ...]:
        return tuple(v for v in self.variables if v.l2 is not None)

    def l2_element_count(self) -> int:
        return sum(v.size for v in self.l2_variables())

    def by_name(self) -> dict[str, VarSpec]:
        return {v.name: v for v in self.variables}


def dataset_specs(
    names: Sequence[str], n_neurons: Sequence[int], alignment: Sequence[bool] | None = None
) -> tuple[DatasetSpec, ...]:
    """Convenience constructor for a list of datasets."""
    alignment = alignment or [False] * len(names)
    return tuple(DatasetSpec(n, d, a) for n, d, a in zip(names, n_neurons, alignment, strict=True))
