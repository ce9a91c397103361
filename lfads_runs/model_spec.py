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

__all__ = [
    "DatasetSpec",
    "VarSpec",
    "ModelSpec",
    "hdf5_key",
    "adam_slot_names",
    "lfads_dataset_name",
    "SCALAR_VARIABLES",
]

#: Non-trainable scalars every checkpoint holds.
SCALAR_VARIABLES = (
    "LFADS/global_step",
    "LFADS/learning_rate",
    "LFADS/beta1_power",
    "LFADS/beta2_power",
)


def lfads_dataset_name(name: str) -> str:
    """LFADS's name for a dataset: the input file name minus ``lfads_`` (``dataset001.h5``)."""
    return name if name.endswith(".h5") else f"{name}.h5"


def hdf5_key(tf_name: str) -> str:
    """Key of a variable in ``model_params``: ``/`` -> ``_`` plus ``:0``."""
    return tf_name.replace("/", "_") + ":0"


def adam_slot_names(tf_name: str) -> tuple[str, str]:
    """Checkpoint names of the Adam first and second moment of a variable."""
    return f"LFADS/{tf_name}/Adam", f"LFADS/{tf_name}/Adam_1"


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
                base = f"LFADS/x_2_infac_{d.name}"
                init = "alignment" if d.has_alignment_matrix else "normal"
                yield V(
                    f"{base}/W",
                    (d.n_encoded, h.factors_dim),
                    h.do_train_readin,
                    "readin",
                    d.name,
                    init=init,
                    init_scale=_normal(d.n_encoded),
                    io=h.do_train_readin,
                )
                yield V(
                    f"{base}/b",
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
                yield from self._gru(f"ic_enc_{direction}", f"ic_enc_t0_{direction}", e_in, H)
            for what in ("mean", "logvar"):
                base = f"LFADS/z/ic_enc_2_post_g0/{what}"
                yield V(f"{base}/W", (2 * H, h.ic_dim), True, "g0", init_scale=_normal(2 * H))
                yield V(f"{base}/b", (1, h.ic_dim), True, "g0", init="zeros")
            yield V("LFADS/z/prior_g0/mean", (1, h.ic_dim), True, "g0", init="zeros")
            yield V(
                "LFADS/z/prior_g0/logvar",
                (1, h.ic_dim),
                h.ic_prior_var_max > h.ic_prior_var_min,
                "g0",
                init="const",
                init_scale=math.log(h.ic_prior_var_scale),
            )
            if self.has_g0_to_gen:
                yield V(
                    "LFADS/gen/g0_2_gen_ic/W",
                    (h.ic_dim, h.gen_dim),
                    True,
                    "g0",
                    init_scale=_normal(h.ic_dim),
                )
                yield V("LFADS/gen/g0_2_gen_ic/b", (1, h.gen_dim), True, "g0", init="zeros")
        else:
            yield V("LFADS/gen/g0", (1, h.gen_dim), True, "g0", init="zeros")
        if self.has_controller:
            H = h.ci_enc_dim
            yield from self._gru("ci_enc_fwd", "ci_enc_t0_fwd", e_in, H)
            if not h.do_causal_controller:
                yield from self._gru("ci_enc_rev", "ci_enc_t0_rev", e_in, H)
            C, U = h.con_dim, h.co_dim
            yield V("LFADS/con/c0", (1, C), True, "con", init="zeros")
            yield from self._gengru(
                "con", self.controller_input_dim, C, h.cell_weight_scale, h.cell_weight_scale
            )
            for what in ("mean", "logvar"):
                base = f"LFADS/con/con_to_post_co/{what}"
                yield V(f"{base}/W", (C, U), True, "co", init_scale=_normal(C))
                yield V(f"{base}/b", (1, U), True, "co", init="zeros")
            yield V(
                "LFADS/z/u_prior_ar1/logevars",
                (1, U),
                h.do_train_prior_ar_nvar,
                "co",
                init="const",
                init_scale=math.log(h.prior_ar_nvar),
            )
            yield V(
                "LFADS/z/u_prior_ar1/logatau",
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
            "LFADS/gen/gen_2_fac/W",
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
            base = f"LFADS/glm/fac_2_{what}_{d.name}"
            aligned = d.has_alignment_matrix
            yield V(
                f"{base}/W",
                (F, d.n_neurons),
                True,
                "readout",
                d.name,
                init="alignment" if aligned else "normal",
                init_scale=_normal(F),
                io=True,
            )
            yield V(
                f"{base}/b",
                (1, d.n_neurons),
                True,
                "readout",
                d.name,
                init="alignment" if aligned else "zeros",
                io=True,
            )
            if h.output_dist == "gaussian":
                base = f"LFADS/glm/fac_2_logvars_{d.name}"
                yield V(
                    f"{base}/W", (F, d.n_neurons), True, "readout", d.name, init="zeros", io=True
                )
                yield V(
                    f"{base}/b",
                    (1, d.n_neurons),
                    True,
                    "readout",
                    d.name,
                    init="const",
                    init_scale=1.0,
                    io=True,
                )

    def _gru(self, scope: str, t0: str, n_in: int, H: int) -> Iterable[VarSpec]:
        s = self.hps.cell_weight_scale
        yield VarSpec(f"LFADS/{scope}/{t0}", (1, H), True, scope, init="zeros")
        yield VarSpec(
            f"LFADS/{scope}/GRU/Gates/xh_2_ru/W",
            (n_in + H, 2 * H),
            True,
            scope,
            init_scale=_normal(n_in + H, s),
        )
        yield VarSpec(f"LFADS/{scope}/GRU/Gates/xh_2_ru/b", (1, 2 * H), True, scope, init="zeros")
        yield VarSpec(
            f"LFADS/{scope}/GRU/Candidate/xrh_2_c/W",
            (n_in + H, H),
            True,
            scope,
            init_scale=_normal(n_in + H),
        )
        yield VarSpec(f"LFADS/{scope}/GRU/Candidate/xrh_2_c/b", (1, H), True, scope, init="zeros")

    def _gengru(
        self, scope: str, n_in: int, H: int, s_in: float, s_rec: float
    ) -> Iterable[VarSpec]:
        base = f"LFADS/{scope}/GenGRU"
        if n_in > 0:
            yield VarSpec(
                f"{base}/Gates/x_2_ru/W", (n_in, 2 * H), True, scope, init_scale=_normal(n_in, s_in)
            )
        yield VarSpec(
            f"{base}/Gates/h_2_ru/W",
            (H, 2 * H),
            True,
            scope,
            l2=scope,
            init_scale=_normal(H, s_rec),
        )
        yield VarSpec(f"{base}/Gates/h_2_ru/b", (1, 2 * H), True, scope, l2=scope, init="zeros")
        if n_in > 0:
            yield VarSpec(
                f"{base}/Candidate/x_2_c/W", (n_in, H), True, scope, init_scale=_normal(n_in, s_in)
            )
        yield VarSpec(
            f"{base}/Candidate/rh_2_c/W",
            (H, H),
            True,
            scope,
            l2=scope,
            init_scale=_normal(H, s_rec),
        )
        yield VarSpec(f"{base}/Candidate/rh_2_c/b", (1, H), True, scope, l2=scope, init="zeros")

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
