"""One PBT member: the Ray Tune function trainable that trains with our engine.

Each generation continues the member's own ``lfadsOutput/`` (TF-format
checkpoints, as everywhere) for ``epochs_per_generation`` epochs, reports the
ranking metric and hands Ray the output folder as its checkpoint. When PBT
exploits, Ray restarts the member with a better member's checkpoint: its
weights, Adam slots, step, learning rate and histories replace the member's own
folder, so ramps (KL/L2 by global step) and the fit log continue the donor's;
the random streams (batches, dropout and CD masks) are reseeded so the copy does
not replay the donor's. Generation 0 lasts through the ramps plus
``epochs_per_generation`` epochs (``setup["first_generation_epochs"]``).
Needs the ``ray`` and ``torch`` extras; runs inside a Ray worker.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from .. import layout as L
from .._atomic import atomic_write_json, atomic_write_text
from .spec import ranked_value

__all__ = ["member_main", "exploit_seed", "CHECKPOINT_META"]

#: ours, inside each Ray checkpoint: which member wrote it, after which generation
CHECKPOINT_META = "lfads_runs.pbt.json"


def member_main(config: dict[str, Any], setup: dict[str, Any]) -> None:
    """The trainable (``tune.with_parameters(member_main, setup=...)``)."""
    from ray import tune

    from ..engine import train
    from ..exceptions import LfadsRunsError, RunFailedError
    from ..hparams import Hyperparameters

    name = tune.get_context().get_trial_name()
    member = L.member_index(name)
    if member is None:
        raise LfadsRunsError(f"PBT trial {name!r} is not named member_<n>")
    mdir = Path(setup["tune_dir"]) / name
    out = mdir / L.LFADS_OUTPUT_DIR
    mdir.mkdir(parents=True, exist_ok=True)
    start, source = 0, None
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            meta = json.loads((Path(d) / CHECKPOINT_META).read_text())
            _install(Path(d) / L.LFADS_OUTPUT_DIR, out)
        start = int(meta["generation"]) + 1
        if meta["member"] != name:
            source = {"member": meta["member"], "generation": int(meta["generation"])}
    elif setup.get("resume") and _restore_interrupted_install(out):
        # A resumed search: continue the member's own folder after its last
        # completed generation (the engine resumes its newest checkpoint exactly).
        rows = _read_rows(mdir / L.MEMBER_TRAJECTORY)
        start = rows[-1]["generation"] + 1 if rows else 0
        if not rows and out.exists():
            shutil.rmtree(out)
        state = _read_state(mdir)
        if state.get("state") == "training" and state.get("generation") == start:
            source = state.get("exploited")  # the interrupted generation began with an exploit
    elif out.exists():  # a fresh member: files of an attempt that never reported go
        shutil.rmtree(out)
    _truncate_trajectory(mdir / L.MEMBER_TRAJECTORY, start)

    metric, mode = setup["metric"], setup["mode"]
    worst = math.inf if mode == "min" else -math.inf
    base = dict(setup["hps"])
    epg = int(setup["epochs_per_generation"])
    threads = setup.get("threads")
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    searched = {name_: hp for name_, hp in setup["search"].items()}
    lr_name = next((n for n, hp in searched.items() if hp == "learning_rate_init"), None)
    first = int(setup.get("first_generation_epochs", epg))
    reported = False
    for gen in range(start, int(setup["generations"])):
        values = {hp: float(config[n]) for n, hp in searched.items()}
        hps = Hyperparameters.from_mapping(
            {
                **base,
                **values,
                "max_epochs": first + gen * epg,
                # PBT decides when a member stops, not the learning-rate floor.
                "learning_rate_stop": 0.0,
            }
        )
        _write_state(
            mdir,
            name,
            gen,
            "training",
            hparams={n: float(config[n]) for n in searched},
            exploited=source,
        )
        t0 = time.time()
        diverged = None
        with open(mdir / L.LOG_FILE, "a", encoding="utf-8") as log:
            log.write(f"==== generation {gen}: {json.dumps(values, sort_keys=True)}\n")
            try:
                res = train(
                    setup["input_dir"],
                    out,
                    hps,
                    device=setup.get("device") or "cpu",
                    seed=int(setup["seed"]) + member,
                    progress=False,
                    log=log,
                    # an explored initial rate scales the lineage's decayed one
                    rescale_learning_rate=lr_name is not None,
                    # after an exploit: the donor's weights, but this member's own noise
                    reseed=exploit_seed(int(setup["seed"]), member, gen) if source else None,
                )
                history = res.history or _fitlog_metrics(out)  # none: trained before a kill
                value = ranked_value(history, metric, int(setup.get("metric_window", 1)))
                if value is None:
                    raise LfadsRunsError(
                        f"the engine reports no metric {metric!r} for {setup['input_dir']} "
                        f"(it has: {', '.join(sorted(res.metrics))}); valid_cobps needs "
                        "heldout_neurons, valid_nll_sv needs c_sv_rate > 0, valid_fpbps c_fp_len > 0"
                    )
                epochs, step = res.epochs, res.steps
            except RunFailedError as exc:  # diverged: rank last, so PBT replaces it
                diverged = str(exc)
                value, epochs, step = worst, None, None
                log.write(f"diverged: {exc}\n")
        if not math.isfinite(value):
            value = worst
        row = {
            "generation": gen,
            "epochs": epochs,
            "step": step,
            "hparams": {n: float(config[n]) for n in searched},
            "metric": metric,
            "value": value if math.isfinite(value) else None,
            "exploited": source,
            "diverged": diverged,
            "seconds": round(time.time() - t0, 3),
        }
        _append_line(mdir / L.MEMBER_TRAJECTORY, row)
        source = None
        if ckpt is None and gen < int(setup.get("catch_up_to", 0)):
            # A resume found this member behind another: it trains up to the others
            # before reporting, so PBT compares members at the same generation.
            continue
        _write_state(mdir, name, gen, "reported")
        _report(tune, out, name, member, gen, metric, value)
        reported = True
    if not reported and ckpt is None:
        # Ray needs a result with the metric from every trial: a resumed member
        # with nothing left to train reports its last generation again.
        rows = _read_rows(mdir / L.MEMBER_TRAJECTORY)
        if rows:
            last = rows[-1]
            v = last["value"] if last["value"] is not None else worst
            _report(tune, out, name, member, int(last["generation"]), metric, v)
    _write_state(mdir, name, int(setup["generations"]) - 1, "finished")


def _fitlog_metrics(out: Path) -> list[dict[str, float]]:
    """Per-epoch metrics from the fit log (those that write them)."""
    from ..io.fitlog import read_fitlog_rows

    path = out / L.FITLOG
    return [dict(r.metrics) for r in read_fitlog_rows(path)] if path.is_file() else []


def exploit_seed(seed: int, member: int, generation: int) -> int:
    """The engine seed of a member's generation that began with an exploit.

    Deterministic, so a member killed during that generation resumes with the
    same streams (the engine then sees its checkpoint already uses them).
    """
    import numpy as np

    return int(np.random.SeedSequence([seed, member, generation]).generate_state(1)[0])


def _report(tune: Any, out: Path, name: str, member: int, gen: int, metric: str, value: float):
    """Report a generation's metric, with the member's output folder as Ray's checkpoint."""
    with tempfile.TemporaryDirectory(prefix="lfads_pbt_") as tmp:
        if out.is_dir():
            shutil.copytree(out, Path(tmp) / L.LFADS_OUTPUT_DIR)
        atomic_write_json(Path(tmp) / CHECKPOINT_META, {"member": name, "generation": gen})
        tune.report(
            {metric: value, "generation": gen, "member": member},
            checkpoint=tune.Checkpoint.from_directory(tmp),
        )


def _install(src: Path, out: Path) -> None:
    """Replace ``out`` by a copy of a checkpoint's output folder.

    Two renames, so a kill leaves either folder complete: ``out`` itself, or
    ``out``'s previous content as ``.<out>.old`` (see _restore_interrupted_install).
    """
    tmp = out.with_name(f".{out.name}.installing")
    old = out.with_name(f".{out.name}.old")
    if tmp.exists():
        shutil.rmtree(tmp)
    if src.is_dir():
        shutil.copytree(src, tmp)
    else:
        tmp.mkdir(parents=True)
    if out.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(out, old)
    os.replace(tmp, out)
    if old.exists():
        shutil.rmtree(old)


def _restore_interrupted_install(out: Path) -> bool:
    """Put back the member's folder when a kill came between _install's renames."""
    old = out.with_name(f".{out.name}.old")
    if not out.exists() and old.exists():
        os.replace(old, out)
    return True


def _read_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError):
                rows.append(json.loads(line))
    return rows


def _truncate_trajectory(path: Path, start: int) -> None:
    """Drop rows of generations that will be trained again (after a restore)."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(ValueError):
            row = json.loads(line)
            if int(row["generation"]) < start:
                keep.append(line)
    atomic_write_text(path, "".join(k + "\n" for k in keep))


def _append_line(path: Path, row: dict[str, Any]) -> None:
    # Rewritten whole (atomically): a kill mid-write never leaves half a line.
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    atomic_write_text(path, old + json.dumps(row, sort_keys=True) + "\n")


def _write_state(mdir: Path, name: str, generation: int, state: str, **extra: Any) -> None:
    """``member.json``; while training it also records the generation's hyperparameters
    and exploit, which a resume after a kill needs (Ray's explore lives in memory)."""
    atomic_write_json(
        mdir / L.MEMBER_STATE,
        {
            "member": name,
            "generation": generation,
            "state": state,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "updated": time.time(),
            **extra,
        },
    )


def _read_state(mdir: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((mdir / L.MEMBER_STATE).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}
