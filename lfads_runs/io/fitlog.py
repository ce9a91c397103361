"""LFADS ``fitlog.csv`` lines (lfads-model.md §7.7).

LFADS appends one line per epoch. The format string is a Python literal with
line continuations, so six extra spaces appear before ``recon`` and ``klweight``
(before ``l2`` without validation data); we reproduce that text byte for byte.
Readers split on commas and strip whitespace.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import attrs

from ..exceptions import DataError, MissingOutputError

__all__ = [
    "FITLOG_VALUES",
    "FitLogRow",
    "append_fitlog_line",
    "format_fitlog_line",
    "read_fitlog_rows",
]

PathLike = str | os.PathLike

_METRIC_NAME = re.compile(r"[a-z][a-z0-9_]*")

_GAP = " " * 6  # the indentation captured by LFADS's backslash continuations

_FORMAT_WITH_VALID = (
    "epoch,%d, step,%d, total,%.2f,%.2f, "
    + _GAP
    + "recon,%.2f,%.2f, kl,%.2f,%.2f, l2,%.5f, "
    + _GAP
    + "klweight,%.2f, l2weight,%.2f"
)
_FORMAT_TRAIN_ONLY = (
    "epoch,%d, step,%d, total,%.2f, recon,%.2f, kl,%.2f, "
    + _GAP
    + "l2,%.5f, klweight,%.2f, l2weight,%.2f"
)

# Token position of each label, and the token positions of the values after it.
_LAYOUT_19 = {
    "epoch": (0, (1,)),
    "step": (2, (3,)),
    "total": (4, (5, 6)),
    "recon": (7, (8, 9)),
    "kl": (10, (11, 12)),
    "l2": (13, (14,)),
    "klweight": (15, (16,)),
    "l2weight": (17, (18,)),
}
_LAYOUT_16 = {
    "epoch": (0, (1,)),
    "step": (2, (3,)),
    "total": (4, (5,)),
    "recon": (6, (7,)),
    "kl": (8, (9,)),
    "l2": (10, (11,)),
    "klweight": (12, (13,)),
    "l2weight": (14, (15,)),
}


#: The per-epoch values of TF LFADS's fit log (FitLogRow's fields between ``step`` and
#: ``metrics``); every other value a training reports is a selection metric.
FITLOG_VALUES = (
    "total_train",
    "total_valid",
    "recon_train",
    "recon_valid",
    "kl_train",
    "kl_valid",
    "l2",
    "kl_weight",
    "l2_weight",
)


@attrs.frozen(kw_only=True)
class FitLogRow:
    """One epoch of ``fitlog.csv``.

    ``epoch`` is LFADS's epoch counter, which restarts at 0 in every training
    process; ``step`` is the global step. Costs are the epoch means (KL
    un-ramped), ``l2`` is the L2 cost of the last batch, and the weights are the
    KL and L2 ramp weights of the last batch. The ``*_valid`` fields are ``None``
    when LFADS had no validation data (16-token lines).
    """

    epoch: int
    step: int
    total_train: float
    total_valid: float | None
    recon_train: float
    recon_valid: float | None
    kl_train: float
    kl_valid: float | None
    l2: float
    kl_weight: float
    l2_weight: float
    #: lfads_runs's selection metrics (``name,value`` pairs after LFADS's tokens).
    metrics: Mapping[str, float] = attrs.field(factory=dict, converter=dict)

    @property
    def has_validation(self) -> bool:
        """True when the row holds validation costs."""
        return self.total_valid is not None


def format_fitlog_line(row: FitLogRow) -> str:
    """Return the exact text LFADS writes for ``row``, without the newline.

    Raises
    ------
    DataError
        Only some of the validation fields are ``None``.
    """
    return _format_tf_tokens(row) + _format_metrics(row.metrics)


def _format_metrics(metrics: Mapping[str, float]) -> str:
    out = []
    for name, value in metrics.items():
        if not _METRIC_NAME.fullmatch(name) or name in _LAYOUT_19:
            msg = f"fitlog metric name {name!r}: expected lower-case letters, digits and '_'"
            raise DataError(msg)
        out.append(f", {name},{float(value):.6g}")
    return "".join(out)


def _format_tf_tokens(row: FitLogRow) -> str:
    valid = (row.total_valid, row.recon_valid, row.kl_valid)
    if all(v is None for v in valid):
        return _FORMAT_TRAIN_ONLY % (
            row.epoch,
            row.step,
            row.total_train,
            row.recon_train,
            row.kl_train,
            row.l2,
            row.kl_weight,
            row.l2_weight,
        )
    if any(v is None for v in valid):
        msg = (
            "fitlog row: total_valid, recon_valid and kl_valid must all be set or all be "
            f"None; got {valid}"
        )
        raise DataError(msg)
    return _FORMAT_WITH_VALID % (
        row.epoch,
        row.step,
        row.total_train,
        row.total_valid,
        row.recon_train,
        row.recon_valid,
        row.kl_train,
        row.kl_valid,
        row.l2,
        row.kl_weight,
        row.l2_weight,
    )


def append_fitlog_line(path: PathLike, row: FitLogRow) -> None:
    """Append ``row`` as one line to ``path`` (created if needed), flushed and fsynced.

    Appending (not an atomic replace) is what LFADS does; a line is written
    with a single ``write`` call so a reader sees either all of it or a torn
    last line, which :func:`read_fitlog_rows` reports.
    """
    line = format_fitlog_line(row) + "\n"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="ascii") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def _parse_line(tokens: list[str], where: str) -> FitLogRow:
    metrics: dict[str, float] = {}
    if len(tokens) > 19 and (len(tokens) - 19) % 2 == 0:
        # lfads_runs's metrics: name,value pairs after the 19 LFADS tokens.
        for name, value in zip(tokens[19::2], tokens[20::2], strict=True):
            if not _METRIC_NAME.fullmatch(name):
                msg = f"{where}: unexpected token {name!r} after the LFADS values"
                raise DataError(msg)
            try:
                metrics[name] = float(value)
            except ValueError:
                msg = f"{where}: metric {name!r} has the unreadable value {value!r}"
                raise DataError(msg) from None
        tokens = tokens[:19]
    if len(tokens) == 19:
        layout = _LAYOUT_19
    elif len(tokens) == 16:
        layout = _LAYOUT_16
    else:
        msg = f"{where}: expected 19 comma-separated tokens (16 without validation), got {len(tokens)}"
        raise DataError(msg)
    values: dict[str, list[str]] = {}
    for label, (pos, value_pos) in layout.items():
        if tokens[pos] != label:
            msg = f"{where}: token {pos + 1} should be {label!r}, got {tokens[pos]!r}"
            raise DataError(msg)
        values[label] = [tokens[i] for i in value_pos]
    try:
        epoch = int(values["epoch"][0])
        step = int(values["step"][0])
        num = {k: [float(v) for v in vs] for k, vs in values.items() if k not in ("epoch", "step")}
    except ValueError as exc:
        msg = f"{where}: unreadable number ({exc})"
        raise DataError(msg) from exc

    def pair(label: str) -> tuple[float, float | None]:
        vals = num[label]
        return vals[0], (vals[1] if len(vals) == 2 else None)

    total_train, total_valid = pair("total")
    recon_train, recon_valid = pair("recon")
    kl_train, kl_valid = pair("kl")
    return FitLogRow(
        epoch=epoch,
        step=step,
        total_train=total_train,
        total_valid=total_valid,
        recon_train=recon_train,
        recon_valid=recon_valid,
        kl_train=kl_train,
        kl_valid=kl_valid,
        l2=num["l2"][0],
        kl_weight=num["klweight"][0],
        l2_weight=num["l2weight"][0],
        metrics=metrics,
    )


def read_fitlog_rows(path: PathLike) -> list[FitLogRow]:
    """Parse every line of a ``fitlog.csv`` (19-token and 16-token lines; blank lines skipped).

    Raises
    ------
    MissingOutputError
        The file does not exist.
    DataError
        A line is malformed; the message names the file and the 1-based line number.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError as exc:
        msg = f"fit log not found: {path}"
        raise MissingOutputError(msg) from exc
    except UnicodeDecodeError as exc:
        msg = f"fit log {path} is not an LFADS fitlog.csv (non-ASCII bytes: {exc})"
        raise DataError(msg) from exc
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        tokens = [t.strip() for t in line.split(",")]
        rows.append(_parse_line(tokens, f"fit log {path}, line {number}"))
    return rows
