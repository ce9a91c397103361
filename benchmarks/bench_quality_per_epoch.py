"""Model quality per epoch on the time-to-R² Lorenz run, over seeds, optionally beside other trainers.

Issue 4 asks for the same quality per epoch as TensorFlow LFADS. This script
trains the run of bench_time_to_r2.py once per seed with every regular
checkpoint kept (one every 10 epochs, as run_lfads.py saves them), then scores
each checkpoint: held-out factor -> latent R² (worst dataset) and the
validation reconstruction cost from the fit log. ``--compare DIR ...`` scores
other output folders of the same run the same way, e.g. TensorFlow LFADS
trained on the printed input folder with ``--print-tf-command`` (add
``--max_ckpt_to_keep=100``). Prints one row per folder::

    folder        R2@1  R2@11 ...    (then)  recon@0 recon@10 ...
    ours_s0       0.028 0.164 ...

and the median over each group's folders.

Usage: ``python benchmarks/bench_quality_per_epoch.py [--seeds 0,1,2] [--epochs 121]
[--threads 1] [--out DIR] [--compare DIR ...] [--print-tf-command]``
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import warnings
from pathlib import Path


def _checkpoints(folder: Path) -> list[tuple[int, Path]]:
    from lfads_runs import layout

    found = set()
    for index in folder.glob(f"{layout.CHECKPOINT_NAME}.ckpt-*.index"):
        prefix = index.with_suffix("")
        found.add((layout.checkpoint_step(prefix), prefix))
    return sorted(found)


def _fitlog(folder: Path) -> list:
    """The folder's fit-log rows ([] without a fit log)."""
    from lfads_runs import layout
    from lfads_runs.io.fitlog import read_fitlog_rows

    path = folder / layout.FITLOG
    return read_fitlog_rows(path) if path.is_file() else []


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=121)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--compare", type=Path, nargs="*", default=[])
    ap.add_argument("--print-tf-command", action="store_true")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from _lorenz_r2 import prepare_run, r2_by_dataset

    from lfads_runs import LfadsRunsWarning
    from lfads_runs.engine import train

    warnings.filterwarnings("ignore", category=LfadsRunsWarning)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_quality_"))
    run, latents = prepare_run(out, c_max_ckpt_to_keep=100)
    if args.print_tf_command:
        flags = " ".join(run.params.lfads_flags(run.n_datasets))
        print(
            f"python run_lfads.py --kind=train --data_dir={run.path_lfads_input} "
            f"--data_filename_stem=lfads --lfads_save_dir=OUT {flags}"
        )
        return 0

    folders: list[tuple[str, Path]] = []
    for seed in (int(s) for s in args.seeds.split(",") if s):
        folder = out / f"ours_s{seed}"
        if not _fitlog(folder):
            with open(os.devnull, "w") as quiet:
                hps = run.hparams(max_epochs=args.epochs)
                train(run.path_lfads_input, folder, hps, seed=seed, progress=False, log=quiet)
        folders.append(("ours", folder))
    folders += [(re.sub(r"_?s?\d+$", "", p.name) or "other", p) for p in args.compare]

    logs = {folder: _fitlog(folder) for _, folder in folders}
    table = {
        folder: {
            step: min(r2_by_dataset(run, latents, prefix).values())
            for step, prefix in _checkpoints(folder)
        }
        for _, folder in folders
    }
    # Epoch 0's row is written after one epoch of steps.
    spe = next((rows[0].step for rows in logs.values() if rows), 1)
    epochs = sorted({round(s / spe) for sc in table.values() for s in sc})
    recon_epochs = list(range(0, args.epochs, 10))
    print(
        "folder        "
        + " ".join(f"R2@{e:<4d}" for e in epochs)
        + "   "
        + " ".join(f"rec@{e:<4d}" for e in recon_epochs)
    )
    groups: dict[str, list[tuple[list[float], list[float]]]] = {}
    for group, folder in folders:
        by_epoch = {round(s / spe): v for s, v in table[folder].items()}
        r2 = [by_epoch.get(e, float("nan")) for e in epochs]
        recon = {r.epoch: r.recon_valid for r in logs[folder]}
        rec = [recon.get(e, float("nan")) for e in recon_epochs]
        groups.setdefault(group, []).append((r2, rec))
        print(
            f"{folder.name[:13]:13s} "
            + " ".join(f"{v:7.3f}" for v in r2)
            + "   "
            + " ".join(f"{v:8.1f}" for v in rec)
        )

    def median(column) -> float:  # over the folders that reached this epoch
        present = [v for v in column if v == v]
        return statistics.median(present) if present else float("nan")

    for group, rows in groups.items():
        med_r2 = [median(c) for c in zip(*(r for r, _ in rows), strict=True)]
        med_rec = [median(c) for c in zip(*(c for _, c in rows), strict=True)]
        print(
            f"{'median ' + group:13s} "
            + " ".join(f"{v:7.3f}" for v in med_r2)
            + "   "
            + " ".join(f"{v:8.1f}" for v in med_rec)
            + f"   ({len(rows)} folders)"
        )
    print(f"data and runs in {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
