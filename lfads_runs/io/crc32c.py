"""CRC32C (Castagnoli) and TensorFlow's CRC masking, without a per-byte Python loop.

TensorFlow checkpoints store the masked CRC32C of every tensor and of every
table block (lfads-model.md §11.6). :func:`crc32c` uses a C implementation when
one is importable (the ``crc32c`` package, the ``fast`` extra, or
``google_crc32c``) and otherwise a vectorised numpy implementation:

* the message is cut into ``L`` equal lanes (zero bytes are prepended, which do
  not change a CRC whose register starts at 0) and the CRC registers of all
  lanes advance together, four bytes per step, through two 65536-entry tables;
* neighbouring lanes are then merged pairwise: CRC(A || B) = Z(CRC(A)) ^ CRC(B),
  where Z is the GF(2)-linear operator "append len(B) zero bytes". Lane lengths
  are powers of two, so only the operators for 2**e zero bytes are needed; each
  is cached as four 256-entry byte tables.

The initial value 0xFFFFFFFF is folded in by XOR-ing it into the first four
message bytes (valid for this reflected CRC), the final XOR is applied at the end.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable

import numpy as np

__all__ = ["crc32c", "crc32c_numpy", "crc32c_reference", "mask", "unmask", "BACKEND"]

_POLY = 0x82F63B78  # reflected Castagnoli polynomial
_MASK_DELTA = 0xA282EAD8
_U32 = 0xFFFFFFFF

# Below this many bytes the word-at-a-time Python loop beats numpy's call overhead.
_SMALL = 2048


def mask(crc: int) -> int:
    """TensorFlow's masked CRC: rotate right by 15 bits and add a constant (mod 2**32)."""
    crc &= _U32
    return ((((crc >> 15) | (crc << 17)) & _U32) + _MASK_DELTA) & _U32


def unmask(masked: int) -> int:
    """Inverse of :func:`mask`."""
    rot = (masked - _MASK_DELTA) & _U32
    return ((rot >> 17) | (rot << 15)) & _U32


# --------------------------------------------------------------------- tables
def _byte_table() -> np.ndarray:
    """T[i]: register after feeding byte i into a zero register."""
    t = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        t = np.where(t & 1, (t >> 1) ^ np.uint32(_POLY), t >> 1).astype(np.uint32)
    return t


@functools.lru_cache(maxsize=1)
def _tables() -> tuple[np.ndarray, np.ndarray, list[int], list[int]]:
    """Tables to advance a register by one 32-bit little-endian word.

    With ``w = register ^ word``, the new register is ``LO[w & 0xffff] ^ HI[w >> 16]``.
    """
    t0 = _byte_table()
    # t[k][i]: byte i followed by k zero bytes (slicing-by-4 tables).
    t = [t0]
    for _ in range(3):
        prev = t[-1]
        t.append((prev >> 8) ^ t0[prev & 0xFF])
    # Byte b0 (lowest) is followed by three more bytes, b3 by none.
    lo = (t[3][None, :] ^ t[2][:, None]).ravel()  # index = b1 * 256 + b0
    hi = (t[1][None, :] ^ t[0][:, None]).ravel()  # index = b3 * 256 + b2
    return lo, hi, lo.tolist(), hi.tolist()


def _apply_tables(tabs: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Apply a linear operator given as four byte tables (4, 256) to uint32 values."""
    return (
        tabs[0][x & 0xFF] ^ tabs[1][(x >> 8) & 0xFF] ^ tabs[2][(x >> 16) & 0xFF] ^ tabs[3][x >> 24]
    )


def _tables_from_columns(cols: np.ndarray) -> np.ndarray:
    """Byte tables of the operator whose image of bit j is ``cols[j]``."""
    tabs = np.empty((4, 256), dtype=np.uint32)
    for p in range(4):
        t = np.zeros(1, dtype=np.uint32)
        for j in range(8):
            t = np.concatenate([t, t ^ cols[8 * p + j]])
        tabs[p] = t
    return tabs


_BITS = np.uint32(1) << np.arange(32, dtype=np.uint32)


@functools.lru_cache(maxsize=64)
def _zeros_operator(e: int) -> np.ndarray:
    """Byte tables of "append 2**e zero bytes" to a register (e >= 2)."""
    if e == 2:
        lo, hi, _, _ = _tables()
        cols = lo[_BITS & 0xFFFF] ^ hi[_BITS >> 16]  # one word of zeros per bit
    else:
        half = _zeros_operator(e - 1)
        cols = _apply_tables(half, _apply_tables(half, _BITS))
    return _tables_from_columns(cols)


# --------------------------------------------------------------------- engines
def _as_bytes_view(data: bytes | bytearray | memoryview | np.ndarray) -> memoryview:
    if isinstance(data, np.ndarray):
        arr = np.ascontiguousarray(data)
        return memoryview(arr.reshape(-1).view(np.uint8))
    mv = memoryview(data)
    if not mv.c_contiguous:
        mv = memoryview(mv.tobytes())
    return mv.cast("B") if mv.format != "B" or mv.ndim != 1 else mv


def _crc_small(mv: memoryview) -> int:
    """Word-at-a-time Python loop for short messages (a handful of iterations)."""
    _, _, lo, hi = _tables()
    n = len(mv)
    reg = _U32
    nw = n // 4
    if nw:
        for word in struct.unpack_from(f"<{nw}I", mv):
            w = reg ^ word
            reg = lo[w & 0xFFFF] ^ hi[w >> 16]
    t0 = _tables_byte_list()
    for b in mv[4 * nw :]:
        reg = t0[(reg ^ b) & 0xFF] ^ (reg >> 8)
    return reg ^ _U32


@functools.lru_cache(maxsize=1)
def _tables_byte_list() -> list[int]:
    return _byte_table().tolist()


def _lane_bytes(n: int) -> int:
    """Lane length (a power of two >= 64) so that about 2048 lanes cover ``n`` bytes."""
    return max(64, 1 << max(0, (n // 2048 - 1).bit_length()))


def crc32c_numpy(data: bytes | bytearray | memoryview | np.ndarray) -> int:
    """CRC32C computed with numpy only (see the module docstring)."""
    mv = _as_bytes_view(data)
    n = len(mv)
    if n < _SMALL:
        return _crc_small(mv)
    lo, hi, _, _ = _tables()
    m = _lane_bytes(n)
    n_lanes = -(-n // m)
    pad = n_lanes * m - n
    buf = np.zeros(n_lanes * m, dtype=np.uint8)
    buf[pad:] = np.frombuffer(mv, dtype=np.uint8)
    # Fold the initial register 0xFFFFFFFF into the first four message bytes.
    buf[pad : pad + 4] ^= np.uint8(0xFF)
    # words[j, i]: j-th little-endian word of lane i, rows contiguous.
    words = np.ascontiguousarray(buf.view("<u4").reshape(n_lanes, m // 4).T, dtype=np.uint32)
    reg = np.zeros(n_lanes, dtype=np.uint32)
    w = np.empty_like(reg)
    tmp = np.empty_like(reg)
    for row in words:
        np.bitwise_xor(reg, row, out=w)
        np.bitwise_and(w, 0xFFFF, out=tmp)
        np.take(lo, tmp, out=reg)
        np.right_shift(w, 16, out=tmp)
        reg ^= hi[tmp]
    # Merge lanes pairwise; a leading zero lane leaves a CRC with zero register unchanged.
    e = m.bit_length() - 1
    while reg.size > 1:
        if reg.size % 2:
            reg = np.concatenate([np.zeros(1, dtype=np.uint32), reg])
        reg = _apply_tables(_zeros_operator(e), reg[0::2]) ^ reg[1::2]
        e += 1
    return int(reg[0]) ^ _U32


def crc32c_reference(data: bytes | bytearray | memoryview | np.ndarray) -> int:
    """Bit-by-bit reference implementation (slow; for tests)."""
    crc = _U32
    for b in bytes(_as_bytes_view(data)):
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (_POLY if crc & 1 else 0)
    return crc ^ _U32


def _pick_backend() -> tuple[str, Callable[[memoryview], int]]:
    try:
        import crc32c as _c  # type: ignore[import-not-found]

        return "crc32c", _c.crc32c
    except ImportError:
        pass
    try:
        import google_crc32c as _g  # type: ignore[import-not-found]

        if getattr(_g, "implementation", "c") == "c":
            return "google_crc32c", lambda mv: _g.value(bytes(mv))  # it wants bytes
    except ImportError:
        pass
    return "numpy", crc32c_numpy


#: Which implementation :func:`crc32c` uses: ``"crc32c"``, ``"google_crc32c"`` or ``"numpy"``.
BACKEND, _impl = _pick_backend()


def crc32c(data: bytes | bytearray | memoryview | np.ndarray) -> int:
    """CRC32C of ``data`` (bytes-like or a numpy array's memory, C order).

    Examples
    --------
    >>> hex(crc32c(b"123456789"))
    '0xe3069283'
    """
    if _impl is crc32c_numpy:
        return crc32c_numpy(data)
    return _impl(_as_bytes_view(data))
