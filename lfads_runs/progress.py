"""Progress bars (tqdm) for a person at a terminal; nothing in logs, pipes and files.

``progress=None`` (the default everywhere) shows a bar only when the stream is a
terminal, so a queue's ``lfads.out``, CI logs and ``2>file`` never fill with
carriage returns; ``True`` forces one (``--progress``), ``False`` turns it off
(``--no-progress``). Messages printed while a bar is shown go through
:func:`write`, which keeps them above the bar.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

from tqdm import tqdm

__all__ = ["wanted", "bar", "write"]


def wanted(progress: bool | None, stream: TextIO | None = None) -> bool:
    """Whether to show a bar on ``stream`` (default stderr): ``progress``, or on a terminal."""
    if progress is not None:
        return bool(progress)
    stream = sys.stderr if stream is None else stream
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
    return bool(tty) and os.environ.get("TERM") != "dumb"


def bar(
    total: int | None,
    desc: str,
    unit: str,
    *,
    progress: bool | None = None,
    stream: TextIO | None = None,
    leave: bool = False,
) -> tqdm:
    """A tqdm bar on ``stream`` (default stderr), disabled unless :func:`wanted`.

    A disabled bar accepts every call (``update``, ``set_postfix_str``, ``close``)
    and prints nothing, so callers need no ``if``.
    """
    stream = sys.stderr if stream is None else stream
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=stream,
        leave=leave,
        disable=not wanted(progress, stream),
        dynamic_ncols=True,
        mininterval=0.2,
    )


def write(message: str, stream: TextIO | None = None) -> None:
    """Print a line on ``stream`` (default stderr) above any bar that is shown."""
    tqdm.write(message, file=sys.stderr if stream is None else stream)
    (sys.stderr if stream is None else stream).flush()
