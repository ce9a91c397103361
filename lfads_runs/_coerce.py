"""One coercion of configuration values, shared by RunParams and Hyperparameters.

Values arrive as YAML scalars, strings of command-line flags and the strings of a
``hyperparameters-<step>.txt`` (booleans ``"true"``/``"false"``). Both classes
accept the same spellings: booleans as ``True``/``False``, ``0``/``1`` or the
words of :data:`BOOL_WORDS` (``yes``/``no``, ``on``/``off``, ... any case);
integers as ``150``, ``150.0``, ``"150"``, ``"1_000"`` or ``"1e3"``; numbers as
strings too. A boolean is never a number. Each function raises ValueError with
the reason; the caller names the field.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Any

__all__ = ["BOOL_WORDS", "to_bool", "to_int", "to_float"]

BOOL_WORDS = {
    "true": True,
    "false": False,
    "yes": True,
    "no": False,
    "on": True,
    "off": False,
    "y": True,
    "n": False,
    "1": True,
    "0": False,
}


def to_bool(value: Any) -> bool:
    """A boolean from a bool, 0/1 or one of :data:`BOOL_WORDS`."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in BOOL_WORDS:
        return BOOL_WORDS[value.strip().lower()]
    raise ValueError(f"expected true or false, got {value!r}")


def to_int(value: Any) -> int:
    """An integer from an int, an integral float or a string of either."""
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got the boolean {value!r}")
    if isinstance(value, str):
        s = value.strip().replace("_", "")
        try:
            value = float(s) if re.search(r"[.eE]", s) else int(s, 10)
        except ValueError:
            raise ValueError(f"expected an integer, got {value!r}") from None
    if isinstance(value, numbers.Integral):  # numpy integers too
        return int(value)
    if isinstance(value, numbers.Real):
        if not math.isfinite(value) or not float(value).is_integer():
            raise ValueError(f"expected an integer, got {value!r}")
        return int(value)
    raise ValueError(f"expected an integer, got {type(value).__name__} {value!r}")


def to_float(value: Any, *, finite: bool = True) -> float:
    """A float from a number or a string of one; ``finite`` refuses inf and NaN."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got the boolean {value!r}")
    if isinstance(value, str):
        try:
            value = float(value.strip().replace("_", ""))
        except ValueError:
            raise ValueError(f"expected a number, got {value!r}") from None
    if not isinstance(value, numbers.Real):  # numpy numbers too
        raise ValueError(f"expected a number, got {type(value).__name__} {value!r}")
    try:
        value = float(value)
    except OverflowError:  # an int beyond float range
        value = math.inf
    if finite and not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r}")
    return value
