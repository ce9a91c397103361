"""RunParams subclasses choose what their hashes see (MATLAB getListProperties* overrides).

The expected hashes are computed here from spec §4 (struct of non-default properties,
DataHash byte stream, MD5, URL-safe base64, 6 characters), independently of
lfads_runs.hashing."""

from __future__ import annotations

import base64
import hashlib
import struct

import attrs
import pytest

from lfads_runs import RunParams, param_field
from lfads_runs.exceptions import ConfigError


def _header(cls: str, *size: int) -> bytes:
    return cls.encode() + struct.pack(f"<{len(size) + 1}Q", len(size), *size)


def _value(v) -> bytes:
    if isinstance(v, str):
        return _header("char", 1, len(v)) + v.encode("utf-16-le")
    if isinstance(v, float):
        return _header("double", 1, 1) + struct.pack("<d", v)
    if isinstance(v, int):  # uint16/uint32 properties with small values hash as uint16
        return _header("uint16", 1, 1) + struct.pack("<H", v)
    raise TypeError(v)


def matlab_hash(fields: dict) -> str:
    stream = _header("struct", 1, 1)
    for name in sorted(fields):
        stream += name.encode() + _value(fields[name])
    digest = hashlib.md5(stream).digest()
    return base64.urlsafe_b64encode(digest).decode()[:6]


@attrs.frozen(kw_only=True)
class LabParams(RunParams):
    align_to: str = param_field("alignTo", "char", "go_cue", "event the trials are aligned to")
    note: str = param_field("note", "char", "", "free text")
    smooth_ms: float = param_field("smoothMs", "double", 0.0, "smoothing applied by the model")

    def properties_not_affecting_hash(self):
        return super().properties_not_affecting_hash() | {"note"}

    def properties_not_affecting_input_data_hash(self):
        return super().properties_not_affecting_input_data_hash() | {"smoothMs"}


def test_subclass_lists_give_the_matlab_hashes():
    p = LabParams(c_factors_dim=8, align_to="target", note="first try", smooth_ms=5.0)
    assert p.param_hash == "param_" + matlab_hash(
        {"alignTo": "target", "c_factors_dim": 8, "smoothMs": 5.0}
    )
    assert p.data_hash == "data_" + matlab_hash({"alignTo": "target", "c_factors_dim": 8})
    # the note never matters; smoothing changes the model folder only
    assert p.with_changes(note="other").param_hash == p.param_hash
    q = p.with_changes(smooth_ms=10.0)
    assert q.param_hash != p.param_hash and q.data_hash == p.data_hash
    assert "note" not in p.differences() and p.differences()["smoothMs"] == 5.0


def test_root_class_lists_reproduce_the_documented_hashes():
    p = RunParams(c_co_dim=0, c_batch_size=150, c_factors_dim=8, c_ic_enc_dim=64,
                  c_gen_dim=64, c_learning_rate_stop=1e-3)  # fmt: skip
    assert (p.param_hash, p.data_hash) == ("param_YOs74u", "data_4MaTKO")
    assert "c_factors_dim" not in p.properties_not_affecting_input_data_hash()
    assert (
        "c_factors_dim"
        in p.with_changes(version=20170101).properties_not_affecting_input_data_hash()
    )
    assert p.properties_not_affecting_hash() >= {"num_samples_posterior", "posterior_mean_kind"}


def test_scale_with_num_datasets_is_overridable():
    class NoScaling(RunParams):
        def properties_scale_with_num_datasets(self):
            return frozenset()

    base = RunParams(c_kl_increase_steps=100, c_kl_start_step=10)
    steps = {"c_kl_increase_steps", "c_l2_increase_steps", "c_kl_start_step", "c_l2_start_step"}
    assert base.properties_scale_with_num_datasets() == steps
    assert "--kl_increase_steps=300" in base.lfads_flags(3)
    assert "--kl_start_step=30" in base.lfads_flags(3)
    plain = NoScaling(c_kl_increase_steps=100)
    assert "--kl_increase_steps=100" in plain.lfads_flags(3)
    assert plain.to_hparams(3).kl_increase_steps == 100
    fixed_start = base.with_changes(scale_start_step_with_datasets=False)
    assert fixed_start.properties_scale_with_num_datasets() == steps - {
        "c_kl_start_step",
        "c_l2_start_step",
    }
    assert "--kl_start_step=10" in fixed_start.lfads_flags(3)


def test_unknown_names_in_a_list_are_an_error():
    class Typo(RunParams):
        def properties_not_affecting_hash(self):
            return super().properties_not_affecting_hash() | {"c_factor_dim"}

    with pytest.raises(ConfigError, match=r"Typo.properties_not_affecting_hash\(\) names unknown"):
        _ = Typo().param_hash
