"""LFADS hyperparameters under the names of ``run_lfads.py``'s flags.

This is the vocabulary shared by the engine, the checkpoint/model_params code
and the scripts for the original TensorFlow LFADS. Defaults are those of
``run_lfads.py`` (master), not lfads-run-manager's: a ``RunParams`` always
passes every value explicitly (:meth:`lfads_runs.RunParams.to_hparams`).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping
from typing import Any

import attrs

from ._coerce import to_bool, to_float, to_int
from .exceptions import ConfigError

__all__ = ["Hyperparameters", "CLIP_VALUE"]

#: LFADS's hidden ``_clip_value``: log-rates are clipped to +-80 for reporting.
CLIP_VALUE = 80.0

_MAXSIZE = 2**63 - 1


def _to_float(v: Any) -> float:
    # Not limited to finite values: LFADS's own flags never were.
    return to_float(v, finite=False)


def _opt(conv):
    def inner(v: Any):
        return None if v is None else conv(v)

    return inner


def _f(default, conv):
    def convert(v: Any, field: attrs.Attribute) -> Any:
        try:
            return conv(v)
        except (TypeError, ValueError) as exc:  # name the flag: one clear error
            raise ConfigError(f"invalid LFADS hyperparameter {field.name}: {exc}") from None

    return attrs.field(default=default, converter=attrs.Converter(convert, takes_field=True))


@attrs.frozen(kw_only=True)
class Hyperparameters:
    """All flags of ``run_lfads.py`` that affect the model, training or outputs."""

    output_dist: str = attrs.field(
        default="poisson", validator=attrs.validators.in_(("poisson", "gaussian"))
    )
    allow_gpu_growth: bool = _f(False, to_bool)
    device: str = _f("gpu:0", str)
    max_ckpt_to_keep: int = _f(5, to_int)
    max_ckpt_to_keep_lve: int = _f(5, to_int)
    learning_rate_init: float = _f(0.01, _to_float)
    learning_rate_decay_factor: float = _f(0.95, _to_float)
    learning_rate_n_to_compare: int = _f(6, to_int)
    learning_rate_stop: float = _f(0.00001, _to_float)
    max_grad_norm: float = _f(200.0, _to_float)
    batch_size: int = _f(128, to_int)
    cell_clip_value: float = _f(5.0, _to_float)
    temporal_spike_jitter_width: int = _f(0, to_int)
    keep_prob: float = _f(0.95, _to_float)
    l2_gen_scale: float = _f(2000.0, _to_float)
    l2_con_scale: float = _f(0.0, _to_float)
    co_mean_corr_scale: float = _f(0.0, _to_float)
    kl_ic_weight: float = _f(1.0, _to_float)
    kl_co_weight: float = _f(1.0, _to_float)
    kl_start_step: int = _f(0, to_int)
    kl_increase_steps: int = _f(2000, to_int)
    l2_start_step: int = _f(0, to_int)
    l2_increase_steps: int = _f(2000, to_int)
    ext_input_dim: int = _f(0, to_int)
    inject_ext_input_to_gen: bool = _f(False, to_bool)
    co_dim: int = _f(1, to_int)
    prior_ar_atau: float = _f(10.0, _to_float)
    do_train_prior_ar_atau: bool = _f(True, to_bool)
    prior_ar_nvar: float = _f(0.1, _to_float)
    do_train_prior_ar_nvar: bool = _f(True, to_bool)
    do_causal_controller: bool = _f(False, to_bool)
    do_feed_factors_to_controller: bool = _f(True, to_bool)
    feedback_factors_or_rates: str = attrs.field(
        default="factors", validator=attrs.validators.in_(("factors", "rates"))
    )
    controller_input_lag: int = _f(1, to_int)
    ci_enc_dim: int = _f(128, to_int)
    con_dim: int = _f(128, to_int)
    co_prior_var_scale: float = _f(0.1, _to_float)
    num_steps_for_gen_ic: int = _f(_MAXSIZE, to_int)
    ic_dim: int = _f(64, to_int)
    ic_enc_dim: int = _f(128, to_int)
    ic_prior_var_min: float = _f(0.1, _to_float)
    ic_prior_var_scale: float = _f(0.1, _to_float)
    ic_prior_var_max: float = _f(0.1, _to_float)
    ic_post_var_min: float = _f(0.0001, _to_float)
    cell_weight_scale: float = _f(1.0, _to_float)
    gen_dim: int = _f(200, to_int)
    gen_cell_input_weight_scale: float = _f(1.0, _to_float)
    gen_cell_rec_weight_scale: float = _f(1.0, _to_float)
    factors_dim: int = _f(50, to_int)
    do_train_readin: bool = _f(True, to_bool)
    do_train_io_only: bool = _f(False, to_bool)
    do_train_encoder_only: bool = _f(False, to_bool)
    do_reset_learning_rate: bool = _f(False, to_bool)
    checkpoint_name: str = _f("lfads_vae", str)
    csv_log: str = _f("fitlog", str)
    ps_nexamples_to_process: int = _f(_MAXSIZE, to_int)
    # Extensions of lfads_runs (not flags of run_lfads.py): None means "no limit".
    max_epochs: int | None = _f(None, _opt(to_int))
    max_train_seconds: float | None = _f(None, _opt(_to_float))
    # AutoLFADS extensions (docs/autolfads.md); their defaults leave the model TF LFADS.
    cd_rate: float = _f(0.0, _to_float)  #: coordinated dropout: fraction of input elements hidden
    cd_pass_rate: float = _f(0.0, _to_float)  #: fraction of seen elements still in the cost
    sv_rate: float = _f(0.0, _to_float)  #: sample validation: fraction of elements held out
    sv_seed: int = _f(0, to_int)  #: seed of the fixed sample-validation mask
    fp_len: int = _f(0, to_int)  #: last bins of each trial predicted, not encoded

    def __attrs_post_init__(self) -> None:
        for name in ("batch_size", "factors_dim", "gen_dim"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"hyperparameter {name} must be > 0, got {getattr(self, name)}")
        for name in ("ic_dim", "ic_enc_dim", "co_dim", "ci_enc_dim", "con_dim", "ext_input_dim"):
            if getattr(self, name) < 0:
                raise ConfigError(f"hyperparameter {name} must be >= 0, got {getattr(self, name)}")
        if self.co_dim > 0 and (self.ci_enc_dim <= 0 or self.con_dim <= 0):
            raise ConfigError("co_dim > 0 needs ci_enc_dim > 0 and con_dim > 0")
        if self.ic_dim > 0 and self.ic_enc_dim <= 0:
            raise ConfigError("ic_dim > 0 needs ic_enc_dim > 0")
        if not 0.0 < self.keep_prob <= 1.0:
            raise ConfigError(f"keep_prob must be in (0, 1], got {self.keep_prob}")
        if self.ic_dim > 0:
            lo, init, hi = self.ic_prior_var_min, self.ic_prior_var_scale, self.ic_prior_var_max
            if not (init > 0 and hi >= lo and lo <= init <= hi):
                raise ConfigError(
                    "ic prior variances need ic_prior_var_scale > 0 and "
                    f"min <= scale <= max (got {lo}, {init}, {hi})"
                )
        if self.controller_input_lag < 0:
            raise ConfigError("controller_input_lag must be >= 0")
        for name in ("cd_rate", "sv_rate"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:  # also refuses NaN
                raise ConfigError(f"hyperparameter {name} must be in [0, 1), got {v}")
        if not 0.0 <= self.cd_pass_rate <= 1.0:
            raise ConfigError(
                f"hyperparameter cd_pass_rate must be in [0, 1], got {self.cd_pass_rate}"
            )
        if self.sv_seed < 0 or self.fp_len < 0:
            raise ConfigError(
                f"hyperparameters sv_seed and fp_len must be >= 0, got {self.sv_seed}, {self.fp_len}"
            )

    # ------------------------------------------------------------------ helpers
    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, strict: bool = False) -> Hyperparameters:
        """Build from flag values (a ``hyperparameters-*.txt`` dict or a flags dict).

        Unknown keys (``kind``, ``data_dir``, ``dataset_names``, ...) are ignored
        unless ``strict``. Values are coerced as RunParams' are (``lfads_runs._coerce``):
        booleans accept ``"true"``/``"false"``, ``"yes"``/``"no"``, ``"on"``/``"off"``, 0/1.
        """
        names = {a.name for a in attrs.fields(cls)}
        unknown = sorted(set(values) - names)
        if strict and unknown:
            raise ConfigError(f"unknown LFADS hyperparameters: {', '.join(unknown)}")
        kw = {k: v for k, v in values.items() if k in names}
        if "output_dist" in kw:
            kw["output_dist"] = str(kw["output_dist"]).lower()
        try:
            return cls(**kw)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"invalid LFADS hyperparameters: {exc}") from exc

    @classmethod
    def from_json_file(cls, path) -> Hyperparameters:
        """Deprecated: use :func:`lfads_runs.io.hyperparameters_file.read_hyperparameters`,
        the one reader of ``hyperparameters-<step>.txt`` (its errors name the file).

        Kept for existing callers; it cannot call that reader, which sits above this
        module (``io`` imports ``hparams``, never the reverse).
        """
        warnings.warn(
            "Hyperparameters.from_json_file is deprecated; use "
            "lfads_runs.io.hyperparameters_file.read_hyperparameters",
            DeprecationWarning,
            stacklevel=2,
        )
        with open(path, encoding="utf-8") as fh:
            return cls.from_mapping(json.load(fh))

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    def evolve(self, **changes: Any) -> Hyperparameters:
        return attrs.evolve(self, **changes)

    @property
    def autolfads_on(self) -> bool:
        """Coordinated dropout, sample validation or forward prediction is switched on."""
        return self.cd_rate > 0 or self.sv_rate > 0 or self.fp_len > 0

    @property
    def l2_is_on(self) -> bool:
        return self.l2_gen_scale > 0 or self.l2_con_scale > 0

    def kl_weight(self, step: int) -> float:
        """Linear KL ramp at ``global_step`` = ``step`` (spec: lfads-model §4)."""
        return _ramp(step, self.kl_start_step, self.kl_increase_steps)

    def l2_weight(self, step: int) -> float:
        return _ramp(step, self.l2_start_step, self.l2_increase_steps)


def _ramp(step: int, start: int, increase: int) -> float:
    # increase == 0 divides by zero in TF at the start step; we treat it as a step function.
    if increase <= 0:
        return 1.0 if step >= start else 0.0
    w = max(step - start, 0) / increase
    return float(min(w, 1.0)) if math.isfinite(w) else 1.0
