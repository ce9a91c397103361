"""RunParams: fields, coercion, hashes' defaults rule, sweeps, flags."""

from __future__ import annotations

import attrs
import pytest
from _lorenz_params import LORENZ
from hypothesis import given, settings
from hypothesis import strategies as st

from lfads_runs import ConfigError, RunParams
from lfads_runs.params import param_field, param_fields


def test_every_spec_property_with_class_and_default():
    fields = {f.matlab_name: f for f in param_fields()}
    expected = {
        "spikeBinMs": ("double", 2.0),
        "trainToTestRatio": ("uint16", 4),
        "c_batch_size": ("uint16", 256),
        "c_kl_increase_steps": ("uint32", 900),
        "c_learning_rate_decay_factor": ("double", 0.98),
        "c_device": ("char", "/gpu:0"),
        "c_num_steps_for_gen_ic": ("uint32", 4294967295),
        "c_co_dim": ("uint16", 4),
        "alignmentExtraArgs": ("cell", ()),
        "useAlignmentMatrix": ("logical", False),
        "c_in_factors_dim": ("uint16", 50),
        "setInFactorsMatchDataForSingleDataset": ("logical", False),
        "num_samples_posterior": ("double", 512.0),
        "c_debug_reduce_timesteps_to": ("double", None),
        "c_output_dist": ("char", "poisson"),
        "scaleIncreaseStepsWithDatasets": ("logical", True),
        "version": ("uint32", 20171107),
    }
    for name, (cls, default) in expected.items():
        assert fields[name].matlab_class == cls
        assert fields[name].default == default
    # 71 MATLAB properties plus our extensions (run limits, AutoLFADS)
    assert sum(not f.extension for f in fields.values()) == 71
    assert {n for n, f in fields.items() if f.extension} == {
        "c_max_epochs",
        "c_max_train_seconds",
        "c_cd_rate",
        "c_cd_pass_rate",
        "c_sv_rate",
        "c_sv_seed",
        "c_fp_len",
    }
    assert fields["c_in_factors_dim"].hidden


def test_snake_case_and_matlab_names_both_accepted():
    a = RunParams.from_mapping({"spikeBinMs": 10, "useAlignmentMatrix": True})
    b = RunParams.from_mapping({"spike_bin_ms": 10, "use_alignment_matrix": True})
    assert a == b and a.spike_bin_ms == 10.0
    with pytest.raises(ConfigError, match="twice"):
        RunParams.from_mapping({"spikeBinMs": 10, "spike_bin_ms": 10})


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("c_learning_rate_stop", "1e-3", 0.001),
        ("c_batch_size", 150.0, 150),
        ("c_batch_size", "150", 150),
        ("use_alignment_matrix", "yes", True),
        ("use_alignment_matrix", 1, True),
        ("c_do_train_readin", "off", False),
        ("c_keep_prob", 1, 1.0),
        ("alignment_extra_args", ["a", 1], ("a", 1)),
    ],
)
def test_coercion(key, value, expected):
    p = RunParams.from_mapping({key: value})
    assert getattr(p, key) == expected
    assert type(getattr(p, key)) is type(expected)


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("c_batch_size", 1.5, "integer"),
        ("c_batch_size", True, "boolean"),
        ("c_batch_size", -1, r"\[0, 65535\]"),
        ("c_batch_size", 70000, "65535"),
        ("c_factors_dim", 0, ">= 1"),
        ("c_learning_rate_init", "fast", "number"),
        ("use_alignment_matrix", 2, "true or false"),
        ("c_output_dist", "binomial", "one of"),
        ("c_keep_prob", 1.5, "<= 1"),
        ("spike_bin_ms", 0, "> 0"),
        ("c_device", 3, "string"),
        ("alignment_approach", "pca", "one of"),
    ],
)
def test_refused_values_name_the_field(key, value, match):
    with pytest.raises(ConfigError, match=match) as info:
        RunParams.from_mapping({key: value})
    assert key in str(info.value)


def test_unknown_property_suggests():
    with pytest.raises(ConfigError, match="did you mean 'c_factors_dim'"):
        RunParams.from_mapping({"c_factor_dim": 8})


def test_frozen_and_with_changes():
    p = RunParams(**LORENZ)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        p.c_factors_dim = 3
    q = p.with_changes(useAlignmentMatrix=True)
    assert q.param_hash == "param_Qr2PeG" and p.param_hash == "param_YOs74u"


def test_equality_is_hash_equality():
    assert RunParams(c_co_dim=4) == RunParams()  # 4 is the default: not hashed
    assert RunParams(name="x") == RunParams(name="y")  # name never hashed
    assert RunParams(c_co_dim=3) != RunParams()


def test_posterior_and_debug_settings_not_hashed():
    base = RunParams()
    for change in (
        {"num_samples_posterior": 16},
        {"posterior_mean_kind": "posterior_push_mean"},
        {"c_debug_verbose": True},
        {"version": 20180101},
    ):
        assert base.with_changes(**change).param_hash == base.param_hash


def test_data_hash_only_depends_on_data_properties():
    base = RunParams(**LORENZ)
    assert base.with_changes(c_gen_dim=128).data_hash == base.data_hash
    assert base.with_changes(trainToTestRatio=9).data_hash != base.data_hash
    assert base.with_changes(c_factors_dim=9).data_hash != base.data_hash
    # Before version 20171107 the factor count did not affect the data hash.
    old = base.with_changes(version=20170101)
    assert old.with_changes(c_factors_dim=9).data_hash == old.data_hash
    assert old.data_hash == RunParams().data_hash


def test_extensions_hashed_only_when_set():
    base = RunParams(**LORENZ)
    assert base.max_epochs is None and base.param_hash == "param_YOs74u"
    limited = base.with_changes(max_epochs=100)
    assert limited.param_hash != base.param_hash
    assert limited.data_hash == base.data_hash
    assert "--max_epochs=100" in limited.lfads_flags(1)
    assert not any("max_epochs" in f for f in base.lfads_flags(1))


def test_sweep_first_property_fastest():
    sw = RunParams.sweep(RunParams(c_co_dim=0), c_factors_dim=[2, 4], c_gen_dim=[32, 64, 96])
    got = [(p.c_factors_dim, p.c_gen_dim) for p in sw]
    assert got == [(2, 32), (4, 32), (2, 64), (4, 64), (2, 96), (4, 96)]
    assert all(p.c_co_dim == 0 for p in sw)
    with pytest.raises(ConfigError, match="unknown RunParams property"):
        RunParams.sweep(None, c_nope=[1])


def test_short_differences_and_summary():
    p = RunParams(**LORENZ, use_alignment_matrix=True)
    assert p.short_differences() == (
        "c_learning_rate_stop=0.001 c_batch_size=150 c_co_dim=0 c_ic_enc_dim=64 "
        "c_gen_dim=64 c_factors_dim=8 useAlignmentMatrix=true"
    )
    assert RunParams().short_differences() == "default"
    text = p.summary_text(index=1)
    assert text.startswith('[1 param_Qr2PeG data_RE1kuL] RunParams ""')
    assert "  spikeBinMs: 2" in text


def test_lfads_flags_like_matlab_but_lossless():
    p = RunParams(**LORENZ, c_learning_rate_init=1e-7)
    flags = p.lfads_flags(n_datasets=3)
    # order = declaration order, as MATLAB
    assert flags[0] == "--allow_gpu_growth=true"
    assert "--batch_size=150" in flags and "--co_dim=0" in flags
    assert "--learning_rate_init=1e-07" in flags  # MATLAB %f printed 0.000000
    assert "--learning_rate_stop=0.001" in flags
    assert "--kl_increase_steps=2700" in flags and "--l2_increase_steps=2700" in flags
    assert "--kl_start_step=0" in flags
    assert "--num_steps_for_gen_ic=4294967295" in flags
    assert "--device=/gpu:0" in flags
    assert not any(f.startswith("--in_factors_dim") for f in flags)  # hidden, default
    assert not any("debug" in f for f in flags)  # fork-only flags, default
    assert not any(f.startswith("--spikeBinMs") for f in flags)
    assert RunParams(c_in_factors_dim=20).lfads_flags(1).count("--in_factors_dim=20") == 1
    single = p.lfads_flags(n_datasets=1)
    assert "--kl_increase_steps=900" in single
    no_scale = p.with_changes(scale_increase_steps_with_datasets=False).lfads_flags(3)
    assert "--kl_increase_steps=900" in no_scale
    assert "--batch_size=150" not in p.lfads_flags(3, omit=["c_batch_size"])


def test_to_hparams_scales_steps():
    hp = RunParams(**LORENZ, c_kl_start_step=10).to_hparams(n_datasets=3)
    assert hp.kl_increase_steps == 2700 and hp.kl_start_step == 30
    assert hp.batch_size == 150 and hp.factors_dim == 8 and hp.learning_rate_decay_factor == 0.98
    assert hp.l2_con_scale == 500.0 and hp.co_dim == 0


def test_subclass_properties_are_hashed():
    @attrs.frozen(kw_only=True)
    class MyParams(RunParams):
        smoothing: float = param_field("smoothing", "double", 0.0, "extra")
        c_extra: int = param_field("c_extra", "uint16", 3, "a subclass c_ property")

    base = MyParams(**LORENZ)
    assert base.param_hash == "param_YOs74u"  # defaults are not hashed
    changed = base.with_changes(smoothing=2.5, c_extra=4)
    assert changed.param_hash != base.param_hash
    # subclass properties enter the data hash even with a c_ prefix (MATLAB rule)
    assert set(changed.hash_struct("data")) == {"c_factors_dim", "smoothing", "c_extra"}


finite = st.floats(min_value=1e-6, max_value=1e3, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["c_factors_dim", "c_gen_dim", "c_batch_size", "c_co_dim"]),
        st.integers(min_value=1, max_value=500),
        max_size=4,
    ),
    st.dictionaries(
        st.sampled_from(["c_learning_rate_init", "c_l2_gen_scale"]), finite, max_size=2
    ),
)
def test_hash_independent_of_key_order(ints, floats):
    values = {**ints, **floats}
    a = RunParams.from_mapping(values)
    b = RunParams.from_mapping(dict(reversed(list(values.items()))))
    c = RunParams.from_mapping({RunParams.fields()[0].name: ""} | values)
    assert a.param_hash == b.param_hash == c.param_hash
    assert a.data_hash == b.data_hash
