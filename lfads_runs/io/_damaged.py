"""One error for a damaged file, whatever the HDF5 library raises while reading it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from ..exceptions import LfadsRunsError

__all__ = ["damaged_file_errors"]


@contextlib.contextmanager
def damaged_file_errors(
    error: type[LfadsRunsError], path: str | os.PathLike, what: str
) -> Iterator[None]:
    """Turn low-level read failures inside the block into ``error`` naming ``path``.

    h5py reports a corrupt chunk as ``OSError: Can't synchronously read data``
    without the file name, and damaged object headers as ``KeyError`` or
    ``RuntimeError``; our own errors pass through unchanged.
    """
    try:
        yield
    except LfadsRunsError:
        raise
    except (OSError, RuntimeError, KeyError) as exc:
        msg = f"{what} {os.fspath(path)} is damaged (truncated or corrupt): {exc}"
        raise error(msg) from exc
