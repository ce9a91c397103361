"""TensorFlow checkpoint V2 (TensorBundle) reader and writer, in pure Python.

A checkpoint prefix ``P`` is two files (lfads-model.md §11): ``P.index``, a
LevelDB-format sorted table mapping tensor names to ``BundleEntryProto``
records, and ``P.data-00000-of-00001``, the raw little-endian tensor bytes.
Everything needed is implemented here: the table footer and blocks (prefix
compressed entries, restart arrays, masked CRC32C trailers), varints and the
few protobuf messages involved. No TensorFlow needed.

The writer reproduces the files TensorFlow writes byte for byte (checked
against the reference fixtures), so checkpoints written by our engine are
readable by TensorFlow and vice versa.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import attrs
import numpy as np

from .._atomic import atomic_path
from ..exceptions import CheckpointError
from .crc32c import crc32c, mask, unmask

__all__ = [
    "TensorInfo",
    "BundleHeader",
    "read_bundle",
    "bundle_index",
    "read_bundle_header",
    "write_bundle",
    "index_path",
    "data_path",
    "checkpoint_exists",
]

_MAGIC = 0xDB4775248B80FB57
_FOOTER_LEN = 48
_TRAILER_LEN = 5
_BLOCK_SIZE = 262144  # tensorflow table::Options defaults used by BundleWriter
_RESTART_INTERVAL = 16
_HEADER_KEY = b""

# DataType enum values (tensorflow/core/framework/types.proto) <-> numpy.
_DT_TO_NP = {
    1: np.dtype("<f4"),
    2: np.dtype("<f8"),
    3: np.dtype("<i4"),
    4: np.dtype("u1"),
    5: np.dtype("<i2"),
    6: np.dtype("i1"),
    8: np.dtype("<c8"),
    9: np.dtype("<i8"),
    10: np.dtype("?"),
    17: np.dtype("<u2"),
    18: np.dtype("<c16"),
    19: np.dtype("<f2"),
    22: np.dtype("<u4"),
    23: np.dtype("<u8"),
}
_NP_TO_DT = {dt.newbyteorder("<") if dt.byteorder != "|" else dt: k for k, dt in _DT_TO_NP.items()}
_DT_NAMES = {7: "DT_STRING", 14: "DT_BFLOAT16", 20: "DT_RESOURCE", 21: "DT_VARIANT"}


def index_path(prefix: str | os.PathLike) -> Path:
    """``<prefix>.index``."""
    return Path(f"{os.fspath(prefix)}.index")


def data_path(prefix: str | os.PathLike, shard: int = 0, num_shards: int = 1) -> Path:
    """``<prefix>.data-<shard>-of-<num_shards>`` (5-digit, zero-padded)."""
    return Path(f"{os.fspath(prefix)}.data-{shard:05d}-of-{num_shards:05d}")


def checkpoint_exists(prefix: str | os.PathLike) -> bool:
    """True when ``<prefix>.index`` exists (TensorFlow's own test)."""
    return index_path(prefix).is_file()


@attrs.frozen
class TensorInfo:
    """Metadata of one tensor in a bundle (a decoded ``BundleEntryProto``)."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int  #: masked CRC32C of the tensor bytes, as stored

    @property
    def nbytes_expected(self) -> int:
        n = self.dtype.itemsize
        for d in self.shape:
            n *= d
        return n


@attrs.frozen
class BundleHeader:
    """The ``""`` entry of a bundle (``BundleHeaderProto``)."""

    num_shards: int = 1
    endianness: int = 0  #: 0 little, 1 big
    producer: int = 1
    min_consumer: int = 0
    bad_consumers: tuple[int, ...] = ()


# ------------------------------------------------------------------ primitives
def _varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _put_varint(out: bytearray, v: int) -> None:
    if v < 0:
        v += 1 << 64  # two's complement, as protobuf encodes negative int64
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


def _skip_field(buf: bytes, pos: int, wire: int) -> int:
    if wire == 0:
        return _varint(buf, pos)[1]
    if wire == 1:
        return pos + 8
    if wire == 2:
        n, pos = _varint(buf, pos)
        return pos + n
    if wire == 5:
        return pos + 4
    raise ValueError(f"unsupported protobuf wire type {wire}")


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


# ------------------------------------------------------------------ protobufs
def _parse_shape(buf: bytes) -> tuple[int, ...]:
    dims = []
    pos = 0
    end = len(buf)
    while pos < end:
        tag, pos = _varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if field == 2 and wire == 2:
            n, pos = _varint(buf, pos)
            sub, stop, size = pos, pos + n, 0
            while sub < stop:
                t2, sub = _varint(buf, sub)
                if t2 == 0x08:
                    size, sub = _varint(buf, sub)
                else:
                    sub = _skip_field(buf, sub, t2 & 7)
            dims.append(_signed64(size))
            pos = stop
        elif field == 3 and wire == 0:
            unknown, pos = _varint(buf, pos)
            if unknown:
                raise ValueError("tensor shape of unknown rank")
        else:
            pos = _skip_field(buf, pos, wire)
    return tuple(dims)


def _parse_entry(name: str, buf: bytes) -> TensorInfo:
    dtype_code = 0
    shape: tuple[int, ...] = ()
    shard_id = offset = size = crc = 0
    pos = 0
    end = len(buf)
    while pos < end:
        tag, pos = _varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if field == 1 and wire == 0:
            dtype_code, pos = _varint(buf, pos)
        elif field == 2 and wire == 2:
            n, pos = _varint(buf, pos)
            shape = _parse_shape(buf[pos : pos + n])
            pos += n
        elif field == 3 and wire == 0:
            shard_id, pos = _varint(buf, pos)
        elif field == 4 and wire == 0:
            offset, pos = _varint(buf, pos)
        elif field == 5 and wire == 0:
            size, pos = _varint(buf, pos)
        elif field == 6 and wire == 5:
            crc = int.from_bytes(buf[pos : pos + 4], "little")
            pos += 4
        elif field == 7:
            raise ValueError("partitioned (sliced) tensors are not supported")
        else:
            pos = _skip_field(buf, pos, wire)
    if pos != end:
        raise ValueError("truncated BundleEntryProto")
    dtype = _DT_TO_NP.get(dtype_code)
    if dtype is None:
        what = _DT_NAMES.get(dtype_code, f"DataType {dtype_code}")
        raise ValueError(f"unsupported tensor dtype {what}")
    if any(d < 0 for d in shape):
        raise ValueError(f"negative dimension in shape {shape}")
    return TensorInfo(name, dtype, shape, shard_id, offset, size, crc)


def _parse_header(buf: bytes) -> BundleHeader:
    num_shards = endianness = min_consumer = 0
    producer = 0
    bad: list[int] = []
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if field == 1 and wire == 0:
            num_shards, pos = _varint(buf, pos)
        elif field == 2 and wire == 0:
            endianness, pos = _varint(buf, pos)
        elif field == 3 and wire == 2:
            n, pos = _varint(buf, pos)
            sub, stop = pos, pos + n
            while sub < stop:
                t2, sub = _varint(buf, sub)
                if t2 == 0x08:
                    producer, sub = _varint(buf, sub)
                elif t2 == 0x10:
                    min_consumer, sub = _varint(buf, sub)
                elif t2 == 0x18:
                    v, sub = _varint(buf, sub)
                    bad.append(v)
                else:
                    sub = _skip_field(buf, sub, t2 & 7)
            pos = stop
        else:
            pos = _skip_field(buf, pos, wire)
    return BundleHeader(num_shards, endianness, producer, min_consumer, tuple(bad))


def _encode_entry(dt: int, shape: tuple[int, ...], offset: int, size: int, crc: int) -> bytes:
    shape_msg = bytearray()
    for d in shape:
        dim = bytearray()
        if d:
            dim.append(0x08)
            _put_varint(dim, d)
        shape_msg.append(0x12)
        _put_varint(shape_msg, len(dim))
        shape_msg += dim
    out = bytearray([0x08])
    _put_varint(out, dt)
    out.append(0x12)  # shape is a message field: present even when empty (scalars)
    _put_varint(out, len(shape_msg))
    out += shape_msg
    # shard_id is always 0 here: omitted, like every proto3 default.
    if offset:
        out.append(0x20)
        _put_varint(out, offset)
    if size:
        out.append(0x28)
        _put_varint(out, size)
    if crc:
        out.append(0x35)
        out += crc.to_bytes(4, "little")
    return bytes(out)


# Single shard, little-endian, VersionDef{producer: 1}.
_HEADER_VALUE = bytes([0x08, 0x01, 0x1A, 0x02, 0x08, 0x01])


# ------------------------------------------------------------------ table read
def _read_block(data: bytes, offset: int, size: int, path: Path, what: str) -> memoryview:
    end = offset + size
    if end + _TRAILER_LEN > len(data):
        raise CheckpointError(
            f"{path}: {what} block at byte {offset} runs past the end of the file"
        )
    block = memoryview(data)[offset:end]
    btype = data[end]
    stored = int.from_bytes(data[end + 1 : end + 5], "little")
    if unmask(stored) != crc32c(memoryview(data)[offset : end + 1]):
        raise CheckpointError(f"{path}: CRC mismatch in the {what} block at byte {offset}")
    if btype != 0:
        raise CheckpointError(
            f"{path}: {what} block at byte {offset} is compressed (type {btype}); "
            "only uncompressed tables are supported (TensorFlow never compresses bundles)"
        )
    return block


def _parse_index(path: Path) -> tuple[BundleHeader, dict[str, TensorInfo]]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint index {path} does not exist") from None
    if len(data) < _FOOTER_LEN:
        raise CheckpointError(f"{path}: too short for a checkpoint index ({len(data)} bytes)")
    footer = data[-_FOOTER_LEN:]
    if int.from_bytes(footer[40:], "little") != _MAGIC:
        raise CheckpointError(f"{path}: bad magic number; not a TensorFlow checkpoint index")
    try:
        _meta_off, pos = _varint(footer, 0)
        _meta_size, pos = _varint(footer, pos)
        idx_off, pos = _varint(footer, pos)
        idx_size, pos = _varint(footer, pos)
    except (IndexError, ValueError):
        raise CheckpointError(f"{path}: corrupt table footer") from None
    index_block = _read_block(data, idx_off, idx_size, path, "index")
    header: BundleHeader | None = None
    entries: dict[str, TensorInfo] = {}
    for _sep, handle in _entries(index_block, path):
        try:
            boff, p = _varint(handle, 0)
            bsize, _ = _varint(handle, p)
        except (IndexError, ValueError):
            raise CheckpointError(f"{path}: corrupt block handle in the index block") from None
        block = _read_block(data, boff, bsize, path, "data")
        for key, value in _entries(block, path):
            if key == _HEADER_KEY:
                try:
                    header = _parse_header(bytes(value))
                except (IndexError, ValueError) as exc:
                    raise CheckpointError(f"{path}: corrupt bundle header ({exc})") from None
                continue
            name = key.decode("utf-8", errors="replace")
            try:
                entries[name] = _parse_entry(name, bytes(value))
            except (IndexError, ValueError) as exc:
                raise CheckpointError(f"{path}: tensor {name!r}: {exc}") from None
    if header is None:
        raise CheckpointError(f"{path}: no bundle header entry; not a TensorBundle index")
    if header.endianness not in (0, 1):
        raise CheckpointError(f"{path}: unknown endianness {header.endianness}")
    if header.min_consumer > 1 or 1 in header.bad_consumers:
        raise CheckpointError(
            f"{path}: written by a newer TensorFlow (min_consumer {header.min_consumer}); "
            "this reader supports bundle version 1"
        )
    if header.endianness == 1:
        entries = {k: attrs.evolve(v, dtype=v.dtype.newbyteorder(">")) for k, v in entries.items()}
    for info in entries.values():
        if info.shard_id >= header.num_shards:
            raise CheckpointError(
                f"{path}: tensor {info.name!r} is in shard {info.shard_id} "
                f"but the bundle has {header.num_shards} shard(s)"
            )
        if info.size != info.nbytes_expected:
            raise CheckpointError(
                f"{path}: tensor {info.name!r} has {info.size} bytes, expected "
                f"{info.nbytes_expected} for {info.dtype} {info.shape}"
            )
    return header, entries


def _entries(block: memoryview, path: Path) -> Iterable[tuple[bytes, memoryview]]:
    """Entries of a table block as (key, value) with keys rebuilt from shared prefixes."""
    buf = bytes(block)
    n = len(buf)
    if n < 4:
        raise CheckpointError(f"{path}: table block too short ({n} bytes)")
    num_restarts = int.from_bytes(buf[n - 4 :], "little")
    end = n - 4 - 4 * num_restarts
    if end < 0:
        raise CheckpointError(f"{path}: corrupt table block (restart count {num_restarts})")
    mv = memoryview(buf)
    pos = 0
    key = b""
    try:
        while pos < end:
            shared, pos = _varint(buf, pos)
            unshared, pos = _varint(buf, pos)
            vlen, pos = _varint(buf, pos)
            if shared > len(key) or pos + unshared + vlen > end:
                raise IndexError
            key = key[:shared] + buf[pos : pos + unshared]
            pos += unshared
            yield key, mv[pos : pos + vlen]
            pos += vlen
    except IndexError:
        raise CheckpointError(f"{path}: corrupt entry in a table block") from None


# ------------------------------------------------------------------ public API
def read_bundle_header(prefix: str | os.PathLike) -> BundleHeader:
    """The bundle header (shard count, endianness, version) of a checkpoint."""
    return _parse_index(index_path(prefix))[0]


def bundle_index(prefix: str | os.PathLike) -> dict[str, TensorInfo]:
    """Metadata of every tensor in a checkpoint, by name, in key order.

    Raises
    ------
    CheckpointError
        The index is missing, truncated, has a bad magic number, a CRC mismatch
        or an undecodable entry.
    """
    return _parse_index(index_path(prefix))[1]


def read_bundle(
    prefix: str | os.PathLike,
    names: Iterable[str] | None = None,
    verify: bool = True,
) -> dict[str, np.ndarray]:
    """Read tensors of a TensorFlow checkpoint (TensorBundle V2).

    Parameters
    ----------
    prefix
        Checkpoint prefix, e.g. ``.../lfadsOutput/lfads_vae_lve.ckpt-320``.
    names
        Tensor names to read (default: all).
    verify
        Check each tensor's masked CRC32C (block CRCs are always checked).

    Returns
    -------
    dict
        Tensor name -> writable numpy array (native dtype, C order), in key order.

    Raises
    ------
    CheckpointError
        Naming the tensor and file: a requested tensor is missing, a data shard
        is missing or truncated, or a CRC does not match.
    """
    ipath = index_path(prefix)
    header, entries = _parse_index(ipath)
    if names is None:
        wanted = list(entries.values())
    else:
        names = list(names)
        missing = [n for n in names if n not in entries]
        if missing:
            raise CheckpointError(
                f"{ipath}: tensor(s) {', '.join(repr(n) for n in missing)} not in the checkpoint"
            )
        wanted = [entries[n] for n in names]
    by_shard: dict[int, list[TensorInfo]] = {}
    for info in wanted:
        by_shard.setdefault(info.shard_id, []).append(info)
    out: dict[str, np.ndarray] = {}
    for shard, infos in sorted(by_shard.items()):
        dpath = data_path(prefix, shard, header.num_shards)
        buf = _read_shard(dpath, infos)
        for info in infos:
            end = info.offset + info.size
            if end > len(buf):
                raise CheckpointError(
                    f"{dpath}: tensor {info.name!r} needs bytes {info.offset}..{end} "
                    f"but the data file has only {len(buf)} bytes (truncated)"
                )
            raw = memoryview(buf)[info.offset : end]
            if verify and crc32c(raw) != unmask(info.crc32c):
                raise CheckpointError(
                    f"{dpath}: CRC mismatch for tensor {info.name!r} "
                    f"(bytes {info.offset}..{end}); the checkpoint is corrupt"
                )
            out[info.name] = _to_array(buf, info)
    if names is not None:
        out = {n: out[n] for n in names}
    return out


def _read_shard(dpath: Path, infos: list[TensorInfo]) -> bytearray:
    try:
        with open(dpath, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            buf = bytearray(size)
            n = fh.readinto(buf)
    except FileNotFoundError:
        which = ", ".join(repr(i.name) for i in infos[:3]) + (" ..." if len(infos) > 3 else "")
        raise CheckpointError(
            f"checkpoint data file {dpath} does not exist (needed for tensor(s) {which})"
        ) from None
    return buf if n == size else buf[:n]


def _to_array(buf: bytearray, info: TensorInfo) -> np.ndarray:
    count = info.size // info.dtype.itemsize
    if info.offset % info.dtype.itemsize:
        # Keep arrays aligned (numpy and h5py prefer it): copy the few misaligned ones.
        a = np.frombuffer(bytes(buf[info.offset : info.offset + info.size]), info.dtype).copy()
    else:
        a = np.frombuffer(buf, info.dtype, count, info.offset)
    if not info.dtype.isnative:
        a = a.astype(info.dtype.newbyteorder("="))
    return a.reshape(info.shape)


# ------------------------------------------------------------------ writer
def _dt_code(name: str, a: np.ndarray) -> tuple[int, np.ndarray]:
    """DataType code and the array as little-endian C-order data."""
    dt = a.dtype
    key = dt if dt.byteorder == "|" else dt.newbyteorder("<")
    code = _NP_TO_DT.get(key)
    if code is None:
        raise CheckpointError(f"tensor {name!r}: dtype {dt} cannot be stored in a checkpoint")
    return code, np.asarray(a, dtype=key, order="C")  # (ascontiguousarray makes 0-d 1-d)


def _shared_prefix(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class _BlockBuilder:
    """LevelDB BlockBuilder: prefix-compressed entries with a restart array."""

    def __init__(self, restart_interval: int) -> None:
        self.interval = restart_interval
        self.buf = bytearray()
        self.restarts = [0]
        self.counter = 0
        self.last = b""
        self.count = 0

    def add(self, key: bytes, value: bytes) -> None:
        shared = 0
        if self.counter < self.interval:
            shared = _shared_prefix(self.last, key)
        else:
            self.restarts.append(len(self.buf))
            self.counter = 0
        _put_varint(self.buf, shared)
        _put_varint(self.buf, len(key) - shared)
        _put_varint(self.buf, len(value))
        self.buf += key[shared:]
        self.buf += value
        self.last = key
        self.counter += 1
        self.count += 1

    def size_estimate(self) -> int:
        return len(self.buf) + 4 * len(self.restarts) + 4

    def finish(self) -> bytes:
        out = self.buf
        for r in self.restarts:
            out += r.to_bytes(4, "little")
        out += len(self.restarts).to_bytes(4, "little")
        return bytes(out)


def _separator(start: bytes, limit: bytes) -> bytes:
    """BytewiseComparator::FindShortestSeparator."""
    i = _shared_prefix(start, limit)
    if i < min(len(start), len(limit)):
        b = start[i]
        if b < 0xFF and b + 1 < limit[i]:
            return start[:i] + bytes([b + 1])
    return start


def _successor(key: bytes) -> bytes:
    """BytewiseComparator::FindShortSuccessor."""
    for i, b in enumerate(key):
        if b != 0xFF:
            return key[:i] + bytes([b + 1])
    return key


def _handle(offset: int, size: int) -> bytes:
    out = bytearray()
    _put_varint(out, offset)
    _put_varint(out, size)
    return bytes(out)


def _build_table(items: list[tuple[bytes, bytes]]) -> bytes:
    """A LevelDB table (no compression, no filter) of sorted (key, value) pairs."""
    out = bytearray()
    index = _BlockBuilder(1)
    data = _BlockBuilder(_RESTART_INTERVAL)
    pending: tuple[int, int] | None = None  # handle of a flushed block awaiting its index key
    last_key = b""

    def write_block(contents: bytes) -> tuple[int, int]:
        off = len(out)
        out.extend(contents)
        trailer_type = b"\x00"
        crc = mask(crc32c(contents + trailer_type))
        out.extend(trailer_type)
        out.extend(crc.to_bytes(4, "little"))
        return off, len(contents)

    for key, value in items:
        if pending is not None:
            index.add(_separator(last_key, key), _handle(*pending))
            pending = None
        data.add(key, value)
        last_key = key
        if data.size_estimate() >= _BLOCK_SIZE:
            pending = write_block(data.finish())
            data = _BlockBuilder(_RESTART_INTERVAL)
    if data.count:
        pending = write_block(data.finish())
    meta = write_block(_BlockBuilder(_RESTART_INTERVAL).finish())
    if pending is not None:
        index.add(_successor(last_key), _handle(*pending))
    idx = write_block(index.finish())
    footer = bytearray(_handle(*meta) + _handle(*idx))
    footer += bytes(40 - len(footer))
    footer += _MAGIC.to_bytes(8, "little")
    out += footer
    return bytes(out)


def write_bundle(prefix: str | os.PathLike, tensors: Mapping[str, np.ndarray]) -> None:
    """Write ``tensors`` as a single-shard TensorFlow checkpoint at ``prefix``.

    Writes ``<prefix>.data-00000-of-00001`` then ``<prefix>.index``, each
    atomically; the checkpoint exists (for TensorFlow and for us) once the index
    is in place. No ``.meta`` graph is written. Tensors are stored in key order,
    as TensorFlow's saver does, so the files match TensorFlow's byte for byte.

    Raises
    ------
    CheckpointError
        A name is empty or not a string, or a dtype has no TensorFlow equivalent.
    """
    items = []
    for name, value in tensors.items():
        if not isinstance(name, str) or not name:
            raise CheckpointError(f"tensor names must be non-empty strings, got {name!r}")
        code, arr = _dt_code(name, np.asarray(value))
        items.append((name.encode("utf-8"), code, arr))
    items.sort(key=lambda t: t[0])
    entries: list[tuple[bytes, bytes]] = [(_HEADER_KEY, _HEADER_VALUE)]
    chunks: list[memoryview] = []
    offset = 0
    for key, code, arr in items:
        raw = memoryview(arr.reshape(-1).view(np.uint8))
        crc = mask(crc32c(raw))
        entries.append((key, _encode_entry(code, arr.shape, offset, arr.nbytes, crc)))
        chunks.append(raw)
        offset += arr.nbytes
    index_bytes = _build_table(entries)
    with atomic_path(data_path(prefix)) as tmp, open(tmp, "wb") as fh:
        for c in chunks:
            fh.write(c)
    with atomic_path(index_path(prefix)) as tmp:
        tmp.write_bytes(index_bytes)
