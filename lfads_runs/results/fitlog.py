"""The training history of a run, read from LFADS's ``fitlog.csv`` (run-manager.md §7.4)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import attrs
import numpy as np

from ..exceptions import DataError
from ..io.fitlog import FITLOG_VALUES, FitLogRow, read_fitlog_rows

__all__ = ["FitLog", "read_fit_log", "FITLOG_FIELDS"]

#: Array fields of :class:`FitLog`, in the column order of ``fitlog.csv``.
FITLOG_FIELDS = ("epochs", "steps", *FITLOG_VALUES)
_INT_FIELDS = ("epochs", "steps")


def _int_array(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64).reshape(-1)


def _float_array(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).reshape(-1)


def _optional_float_array(x) -> np.ndarray | None:
    return None if x is None else _float_array(x)


@attrs.frozen(kw_only=True, eq=False, repr=False)
class FitLog:
    """One value per logged epoch (row of ``fitlog.csv``), as float64/int64 arrays.

    Attributes
    ----------
    epochs : ndarray of int64
        LFADS's epoch counter as logged; it restarts at 0 whenever training resumes.
    steps : ndarray of int64
        Global step at the end of each epoch.
    total_train, total_valid, recon_train, recon_valid, kl_train, kl_valid : ndarray
        Epoch costs (KL un-ramped) as printed (two decimals). The ``*_valid``
        arrays are NaN for rows written without validation data.
    l2 : ndarray
        L2 cost of the last batch of each epoch (five decimals).
    kl_weight, l2_weight : ndarray
        KL and L2 ramp weights of the last batch, as printed (two decimals).
    learning_rate : ndarray or None
        Learning rate per epoch when known (``fitlog.csv`` has none; our engine
        may record it separately).
    path : Path or None
        The file read, if any.
    """

    epochs: np.ndarray = attrs.field(converter=_int_array)
    steps: np.ndarray = attrs.field(converter=_int_array)
    total_train: np.ndarray = attrs.field(converter=_float_array)
    total_valid: np.ndarray = attrs.field(converter=_float_array)
    recon_train: np.ndarray = attrs.field(converter=_float_array)
    recon_valid: np.ndarray = attrs.field(converter=_float_array)
    kl_train: np.ndarray = attrs.field(converter=_float_array)
    kl_valid: np.ndarray = attrs.field(converter=_float_array)
    l2: np.ndarray = attrs.field(converter=_float_array)
    kl_weight: np.ndarray = attrs.field(converter=_float_array)
    l2_weight: np.ndarray = attrs.field(converter=_float_array)
    learning_rate: np.ndarray | None = attrs.field(default=None, converter=_optional_float_array)
    path: Path | None = attrs.field(default=None)
    #: lfads_runs's per-epoch selection metrics (docs/autolfads.md): name -> values,
    #: NaN for epochs logged without that metric.
    metrics: dict[str, np.ndarray] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        n = len(self.epochs)
        lengths = {f: len(getattr(self, f)) for f in FITLOG_FIELDS}
        if self.learning_rate is not None:
            lengths["learning_rate"] = len(self.learning_rate)
        lengths.update({k: len(v) for k, v in self.metrics.items()})
        bad = {f: m for f, m in lengths.items() if m != n}
        if bad:
            where = f" ({self.path})" if self.path else ""
            msg = f"fit log{where}: every field needs {n} values (one per epoch); got {bad}"
            raise DataError(msg)

    @classmethod
    def from_rows(
        cls,
        rows: Sequence[FitLogRow],
        *,
        learning_rate: Sequence[float] | np.ndarray | None = None,
        path: str | os.PathLike | None = None,
    ) -> FitLog:
        """Build from parsed ``fitlog.csv`` rows (validation values ``None`` become NaN)."""

        def col(name: str) -> list[float]:
            return [np.nan if getattr(r, name) is None else getattr(r, name) for r in rows]

        return cls(
            epochs=[r.epoch for r in rows],
            steps=[r.step for r in rows],
            total_train=col("total_train"),
            total_valid=col("total_valid"),
            recon_train=col("recon_train"),
            recon_valid=col("recon_valid"),
            kl_train=col("kl_train"),
            kl_valid=col("kl_valid"),
            l2=col("l2"),
            kl_weight=col("kl_weight"),
            l2_weight=col("l2_weight"),
            learning_rate=learning_rate,
            path=None if path is None else Path(path),
            metrics={
                name: np.array([r.metrics.get(name, np.nan) for r in rows], dtype=np.float64)
                for name in dict.fromkeys(k for r in rows for k in r.metrics)
            },
        )

    @property
    def n_epochs(self) -> int:
        """Number of logged epochs (rows), across restarts."""
        return int(len(self.epochs))

    @property
    def has_validation(self) -> bool:
        """True when any row holds a validation cost."""
        return bool(np.isfinite(self.total_valid).any())

    @property
    def lve_index(self) -> int | None:
        """0-based row of the lowest validation error, or ``None`` when no row is eligible.

        The rule of lfads-run-manager's ``FitLog``: the first row minimising
        ``total_valid`` among rows whose printed ``kl_weight`` and ``l2_weight``
        both equal 1. (MATLAB returns row 1 when no row is eligible; we return
        ``None``.) It can differ from LFADS's own ``checkpoint_lve`` step, which
        uses unrounded weights and other conditions.
        """
        eligible = (self.kl_weight == 1.0) & (self.l2_weight == 1.0) & np.isfinite(self.total_valid)
        if not eligible.any():
            return None
        candidates = np.where(eligible, self.total_valid, np.inf)
        return int(np.argmin(candidates))  # argmin returns the first minimum

    @property
    def lve_index_1based(self) -> int | None:
        """:attr:`lve_index` + 1: the row number MATLAB's ``lveIndex`` gives (1-based)."""
        i = self.lve_index
        return None if i is None else i + 1

    def _at_lve(self, field: str) -> float | int | None:
        i = self.lve_index
        if i is None:
            return None
        values = getattr(self, field)
        if values is None:
            return None
        return values[i].item()

    @property
    def step_lve(self) -> int | None:
        """Global step of the LVE row (``None`` without an eligible row)."""
        return self._at_lve("steps")

    @property
    def epoch_lve(self) -> int | None:
        """Logged epoch counter of the LVE row."""
        return self._at_lve("epochs")

    @property
    def total_train_lve(self) -> float | None:
        """Training total cost at the LVE row."""
        return self._at_lve("total_train")

    @property
    def total_valid_lve(self) -> float | None:
        """Validation total cost at the LVE row (the lowest eligible one)."""
        return self._at_lve("total_valid")

    @property
    def recon_train_lve(self) -> float | None:
        """Training reconstruction cost at the LVE row."""
        return self._at_lve("recon_train")

    @property
    def recon_valid_lve(self) -> float | None:
        """Validation reconstruction cost at the LVE row."""
        return self._at_lve("recon_valid")

    @property
    def kl_train_lve(self) -> float | None:
        """Training KL cost at the LVE row."""
        return self._at_lve("kl_train")

    @property
    def kl_valid_lve(self) -> float | None:
        """Validation KL cost at the LVE row."""
        return self._at_lve("kl_valid")

    @property
    def l2_lve(self) -> float | None:
        """L2 cost at the LVE row."""
        return self._at_lve("l2")

    @property
    def learning_rate_lve(self) -> float | None:
        """Learning rate at the LVE row, when learning rates are known."""
        return self._at_lve("learning_rate")

    def as_dict(self) -> dict[str, np.ndarray]:
        """Every array field by name (``learning_rate`` only when present)."""
        out = {f: getattr(self, f) for f in FITLOG_FIELDS}
        if self.learning_rate is not None:
            out["learning_rate"] = self.learning_rate
        return out

    def to_rows(self) -> list[FitLogRow]:
        """The rows again, as :class:`~lfads_runs.io.fitlog.FitLogRow` (NaN validation -> None)."""

        def opt(x: float) -> float | None:
            return None if np.isnan(x) else float(x)

        return [
            FitLogRow(
                epoch=int(self.epochs[i]),
                step=int(self.steps[i]),
                total_train=float(self.total_train[i]),
                total_valid=opt(self.total_valid[i]),
                recon_train=float(self.recon_train[i]),
                recon_valid=opt(self.recon_valid[i]),
                kl_train=float(self.kl_train[i]),
                kl_valid=opt(self.kl_valid[i]),
                l2=float(self.l2[i]),
                kl_weight=float(self.kl_weight[i]),
                l2_weight=float(self.l2_weight[i]),
            )
            for i in range(self.n_epochs)
        ]

    def __repr__(self) -> str:
        if self.n_epochs == 0:
            return "FitLog(0 epochs)"
        parts = [f"{self.n_epochs} epochs", f"steps {self.steps[0]}..{self.steps[-1]}"]
        parts.append(
            f"last total {self.total_train[-1]:.2f} train / {self.total_valid[-1]:.2f} valid"
        )
        i = self.lve_index
        if i is None:
            parts.append("no LVE row")
        else:
            parts.append(
                f"LVE row {i} (step {self.steps[i]}, total_valid {self.total_valid[i]:.2f})"
            )
        if self.learning_rate is not None:
            parts.append(f"lr {self.learning_rate[-1]:g}")
        return f"FitLog({', '.join(parts)})"


def read_fit_log(
    path: str | os.PathLike, *, learning_rate: Sequence[float] | np.ndarray | None = None
) -> FitLog:
    """Read a ``fitlog.csv`` written by TensorFlow LFADS or our engine.

    Parameters
    ----------
    path
        The fit log.
    learning_rate
        Optional learning rate per row (e.g. from our engine's own record).

    Raises
    ------
    MissingOutputError
        The file does not exist.
    DataError
        A line is malformed, or ``learning_rate`` has the wrong length.
    """
    return FitLog.from_rows(read_fitlog_rows(path), learning_rate=learning_rate, path=path)
