"""Leave the tree as it was when an operation fails.

``undo_created(paths)`` notes which of ``paths`` do not exist yet; if the block
raises, it removes those of them that the block created: files and links, then
folders (deepest first, only when empty, so nothing anyone else put there is
lost). A failed ``prepare`` thus leaves no empty ``param_*`` folder, no
``params.json`` and no lock file behind. A file is kept when its folder holds
anything else by then (another process's run sharing it).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = ["undo_created"]


@contextlib.contextmanager
def undo_created(paths: Iterable[str | os.PathLike]) -> Iterator[None]:
    absent = [Path(p) for p in paths if not os.path.lexists(p)]
    try:
        yield
    except BaseException:
        mine = set(absent)
        for p in sorted(absent, key=lambda q: len(q.parts), reverse=True):
            with contextlib.suppress(OSError):  # gone already, or not empty: keep it
                if p.is_dir() and not p.is_symlink():
                    p.rmdir()
                elif os.path.lexists(p) and _alone(p, mine):
                    p.unlink()
        raise


def _alone(p: Path, mine: set[Path]) -> bool:
    """Whether everything beside ``p`` is also ours to remove.

    A file such as ``params.json`` that another process's run now shares (its
    ``param_*/<spec>/`` folder appeared meanwhile) stays.
    """
    return all(sib in mine for sib in p.parent.iterdir())
