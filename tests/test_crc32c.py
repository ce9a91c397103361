"""CRC32C (Castagnoli) and TensorFlow masking: both backends against simple references."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import lve_checkpoint

from lfads_runs.io import crc32c as C

# Lengths around the small/lane switch, lane boundaries and odd lane counts.
LENGTHS = [0, 1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 63, 64, 65, 255, 256, 1023]
LENGTHS += [C._SMALL - 1, C._SMALL, C._SMALL + 1, 4095, 4096, 4097, 12345, 65536, 131075]


def _table_reference(data: bytes) -> int:
    """Plain byte-table CRC32C, independent of the module's word tables."""
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
        table.append(c)
    crc = 0xFFFFFFFF
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


@pytest.fixture(params=["default", "numpy"])
def crc(request, monkeypatch):
    """crc32c() through the configured backend and forced onto the numpy path."""
    if request.param == "numpy":
        monkeypatch.setattr(C, "_impl", C.crc32c_numpy)
    return C.crc32c


def test_check_value(crc):
    """The standard check value of CRC32C."""
    assert crc(b"123456789") == 0xE3069283


def test_reference_matches_check_value():
    """Both references agree on the check value."""
    assert C.crc32c_reference(b"123456789") == 0xE3069283
    assert _table_reference(b"123456789") == 0xE3069283


@pytest.mark.parametrize("n", LENGTHS)
def test_random_data(crc, n):
    """Random messages of many lengths, including 0 and 1, match the reference."""
    rng = np.random.default_rng(n)
    data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    assert crc(data) == _table_reference(data)


def test_bit_reference_on_short_messages():
    """The bit-by-bit reference agrees with the numpy path."""
    rng = np.random.default_rng(7)
    for n in (0, 1, 5, 100, 3000):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert C.crc32c_reference(data) == C.crc32c_numpy(data)


def test_input_types(crc):
    """bytes, bytearray, memoryview and numpy arrays (any dtype, non-contiguous) agree."""
    a = np.random.default_rng(1).standard_normal((40, 30)).astype(np.float32)
    expected = _table_reference(a.tobytes())
    assert crc(a) == expected
    assert crc(a.tobytes()) == expected
    assert crc(bytearray(a.tobytes())) == expected
    assert crc(memoryview(a)) == expected
    f = np.asfortranarray(a)
    assert crc(f) == expected  # C order of the values, as TensorFlow stores them
    assert crc(a.T) == _table_reference(np.ascontiguousarray(a.T).tobytes())
    assert crc(np.int64(7).reshape(())) == _table_reference(np.int64(7).tobytes())


def test_zero_prefix_and_all_ff():
    """Messages of all zeros and all 0xff (edge cases for the folded initial value)."""
    for n in (4, 5000, 70000):
        for fill in (0, 0xFF):
            data = bytes([fill]) * n
            assert C.crc32c_numpy(data) == _table_reference(data)


def test_mask_roundtrip_and_known_value():
    """mask/unmask are inverse; the masked value matches TensorFlow's formula."""
    rng = np.random.default_rng(3)
    for v in [0, 1, 0xFFFFFFFF, 0xE3069283, *rng.integers(0, 2**32, 100).tolist()]:
        assert C.unmask(C.mask(v)) == v
        assert 0 <= C.mask(v) < 2**32
    crc = 0xE3069283
    assert C.mask(crc) == ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) % 2**32


def test_real_data_shard(tf_fixtures):
    """A whole TensorFlow data shard (89 kB of float32) as one long message."""
    shard = lve_checkpoint("ctrl1").with_name(f"{lve_checkpoint('ctrl1').name}.data-00000-of-00001")
    data = shard.read_bytes()
    assert C.crc32c_numpy(data) == _table_reference(data)


def test_backend_name():
    """BACKEND names the implementation in use."""
    assert C.BACKEND in ("crc32c", "google_crc32c", "numpy")
