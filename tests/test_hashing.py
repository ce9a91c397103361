"""MATLAB DataHash reproduction: byte streams and the documented check values."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from _lorenz_params import LORENZ

from lfads_runs.hashing import MValue, datahash_bytes, short_hash
from lfads_runs.params import RunParams


def test_worked_byte_stream_of_the_spec():
    """The 75-byte stream of spec §4.6 and its hash 4MaTKO."""
    s = MValue("struct", {"c_factors_dim": MValue("uint16", 8)})
    expected = (
        b"struct"
        + struct.pack("<3Q", 2, 1, 1)
        + b"c_factors_dim"
        + b"uint16"
        + struct.pack("<3Q", 2, 1, 1)
        + b"\x08\x00"
    )
    assert datahash_bytes(s) == expected
    assert len(expected) == 75
    assert short_hash(s) == "4MaTKO"


@pytest.mark.parametrize(
    "extra, param_hash, data_hash",
    [
        ({}, "param_YOs74u", "data_4MaTKO"),
        ({"use_alignment_matrix": True}, "param_Qr2PeG", "data_RE1kuL"),
    ],
)
def test_lorenz_check_values(extra, param_hash, data_hash):
    """The hashes printed in the lfads-run-manager documentation (spec §4.7)."""
    p = RunParams(**LORENZ, **extra)
    assert p.param_hash == param_hash
    assert p.data_hash == data_hash


def test_spike_bin_default_is_not_hashed_but_other_values_are():
    assert RunParams(**LORENZ, spike_bin_ms=2).param_hash == "param_YOs74u"
    assert RunParams(**LORENZ, spike_bin_ms=10).param_hash != "param_YOs74u"
    assert RunParams(**LORENZ, spike_bin_ms=10).data_hash != "data_4MaTKO"


def test_empty_struct_and_headers():
    assert datahash_bytes(MValue("struct", {})) == b"struct" + struct.pack("<3Q", 2, 1, 1)
    assert datahash_bytes(MValue("char", "")) == b"char" + struct.pack("<3Q", 2, 0, 0)
    assert datahash_bytes(MValue("double", None)) == b"double" + struct.pack("<3Q", 2, 0, 0)
    assert datahash_bytes(MValue("cell", ())) == b"cell" + struct.pack("<3Q", 2, 0, 0)


def test_char_is_utf16_and_logical_one_byte():
    assert datahash_bytes(MValue("char", "ab")).endswith(b"a\x00b\x00")
    assert datahash_bytes(MValue("char", "é")).endswith("é".encode("utf-16-le"))
    assert datahash_bytes(MValue("logical", True)).endswith(b"\x01")


@pytest.mark.parametrize(
    "cls, value, hashed_as, width",
    [
        ("uint32", 1800, "uint16", 2),
        ("uint32", 100000, "uint32", 4),
        ("uint64", 70000, "uint32", 4),
        ("int64", -5, "int16", 2),
        ("int64", -(2**31), "int32", 4),
        ("int64", 2**31 - 1, "int64", 8),
        ("uint16", 7, "uint16", 2),
        ("double", 3.0, "double", 8),
    ],
)
def test_auto_downsize_integers(cls, value, hashed_as, width):
    b = datahash_bytes(MValue(cls, value))
    assert b.startswith(hashed_as.encode())
    assert len(b) == len(hashed_as) + 24 + width


def test_uint32_step_field_hashes_as_uint16():
    """c_kl_increase_steps is uint32 but hashed as uint16 when small (spec §4.4 example)."""
    p = RunParams(c_kl_increase_steps=1800)
    assert p.hash_struct()["c_kl_increase_steps"].cls == "uint32"
    manual = MValue("struct", {"c_kl_increase_steps": MValue("uint16", 1800)})
    assert p.param_hash == "param_" + short_hash(manual)


def test_struct_fields_sorted_by_code_point():
    """Upper case sorts before '_' before lower case (MATLAB sort of char)."""
    s = MValue(
        "struct", {"b": MValue("double", 1), "B": MValue("double", 2), "_x": MValue("double", 3)}
    )
    stream = datahash_bytes(s)
    assert stream.index(b"B") < stream.index(b"_x") < stream.index(b"b" + b"double")


def test_column_major_arrays():
    arr = np.array([[1, 2], [3, 4]], dtype=float)
    b = datahash_bytes(MValue("double", arr))
    assert b.endswith(np.array([1, 3, 2, 4], dtype="<f8").tobytes())
