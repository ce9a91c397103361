"""Plain JSON values from the records the package writes (parameters, state, summaries)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["jsonable"]


def jsonable(value: Any, *, non_finite_as_none: bool = False) -> Any:
    """``value`` as nested dicts, lists, strings, numbers, booleans and None.

    Mappings get string keys; tuples and arrays become lists, sets sorted lists;
    numpy scalars become Python numbers and paths strings; any other object its
    ``str()``. ``non_finite_as_none`` turns NaN and infinities into None, for files
    written with ``allow_nan=False`` (strict JSON) that must not fail on them.
    """
    if isinstance(value, Mapping):
        return {
            str(k): jsonable(v, non_finite_as_none=non_finite_as_none) for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return [jsonable(v, non_finite_as_none=non_finite_as_none) for v in items]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist(), non_finite_as_none=non_finite_as_none)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, float) and non_finite_as_none and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
