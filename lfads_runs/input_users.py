"""Which run folders use a prepared data folder, and whether they trained or train now.

Before prepared inputs are rewritten (``prepare --regenerate``, or a source file
whose content changed), the runs linking to them are looked up on disk, including
those of parameter sets no longer in the configuration: a run that trained on the
old inputs would silently stop matching them, and a run training now would read
a mix of old and new files.
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs

from . import layout as L

__all__ = ["InputUser", "input_users"]


@attrs.frozen
class InputUser:
    run_dir: Path
    trained: bool  #: checkpoints or model_params exist
    live_claim: str | None  #: "pid N on HOST since ..." while another process holds the run

    def describe(self) -> str:
        return str(self.run_dir) + (f" (running: {self.live_claim})" if self.live_claim else "")


def _links_into(input_dir: Path, common: Path) -> bool:
    try:
        entries = list(os.scandir(input_dir))
    except OSError:
        return False
    for e in entries:
        try:
            if Path(e.path).resolve().parent == common:
                return True
        except (OSError, RuntimeError):
            continue
    return False


def input_users(layout: L.CollectionLayout, spec: str, common: Path) -> list[InputUser]:
    """Run folders ``param_*/<spec>/`` whose ``lfadsInput/`` links into ``common``."""
    from .runstate import read_claim

    common = common.resolve()
    users = []
    for pf in layout.param_folders_on_disk():
        run_dir = pf / spec
        if not _links_into(run_dir / L.LFADS_INPUT_DIR, common):
            continue
        out = run_dir / L.LFADS_OUTPUT_DIR
        trained = (out / L.MODEL_PARAMS).exists() or any(out.glob("*.ckpt-*.index"))
        claim = read_claim(run_dir / L.CLAIM_FILE)
        live = None
        if claim is not None and not claim.is_stale() and claim.pid != os.getpid():
            live = claim.describe()
        users.append(InputUser(run_dir, trained, live))
    return users
