"""Which live processes hold runs, and which runs use a prepared data folder.

The one place that reads run claims to refuse a change: ``delete_lfads_output`` /
``delete_lfads_input_files`` (:mod:`lfads_runs.actions.cleanup`) and rewriting prepared
inputs (``prepare --regenerate``, or a source file whose content changed) both
ask here, and both refuse with :class:`~lfads_runs.exceptions.RunBusyError`.

Before prepared inputs are rewritten, the runs linking to them are looked up on
disk, including those of parameter sets no longer in the configuration: a run
that trained on the old inputs would silently stop matching them, and a run
training now would read a mix of old and new files.
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs

from . import layout as L
from .runstate import Claim, read_claim

__all__ = ["InputUser", "input_users", "live_claim"]


def live_claim(run_dir: Path, *, ignore_own: bool = False) -> Claim | None:
    """The claim of the live process holding ``run_dir``; None when there is none or
    its owner is dead (stale). ``ignore_own``: a claim of this very process is no holder."""
    claim = read_claim(run_dir / L.CLAIM_FILE)
    if claim is None or claim.is_stale() or (ignore_own and claim.pid == os.getpid()):
        return None
    return claim


@attrs.frozen
class InputUser:
    run_dir: Path
    trained: bool  #: checkpoints or model_params exist
    live_claim: Claim | None  #: the claim of another live process holding the run

    def describe(self) -> str:
        live = self.live_claim
        return str(self.run_dir) + (f" (running: {live.describe()})" if live else "")


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
    common = common.resolve()
    users = []
    for pf in layout.param_folders_on_disk():
        run_dir = pf / spec
        if not _links_into(run_dir / L.LFADS_INPUT_DIR, common):
            continue
        out = run_dir / L.LFADS_OUTPUT_DIR
        trained = (out / L.MODEL_PARAMS).exists() or any(out.glob("*.ckpt-*.index"))
        users.append(InputUser(run_dir, trained, live_claim(run_dir, ignore_own=True)))
    return users
