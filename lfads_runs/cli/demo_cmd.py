"""``lfads-runs demo``: stitched LFADS on synthetic Lorenz data, end to end on this machine."""

from __future__ import annotations

from pathlib import Path

import click

from ._app import cli


@cli.command("demo")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo_out"),
    show_default=True,
    help="Output folder (data, config, runs, figures, summary.json).",
)
@click.option("--quick", is_flag=True, help="A small problem that runs in well under a minute.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of data and training.")
@click.option(
    "--figures/--no-figures",
    default=None,
    help="Write the PNG figures (needs matplotlib). Default: when matplotlib is installed.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="Torch threads for training (default: every core).",
)
def demo(out_dir: Path, quick: bool, seed: int, figures: bool | None, threads: int | None) -> None:
    """Generate 3 Lorenz datasets, prepare with alignment matrices, train the stitched
    run on the CPU, load the results and print per-dataset R² on held-out trials.

    Also written: OUT/summary.json (R², timings of each stage, paths) and the
    figures in OUT/figures. Rerunning replaces a previous demo's files in OUT.
    """
    from .._optional import has_module
    from ..demo import run_demo

    if figures is None:  # a bare `pip install lfads_runs[torch]` still runs the demo
        figures = has_module("matplotlib")
        if not figures:
            click.echo(
                "figures: skipped, matplotlib is not installed (pip install 'lfads_runs[plot]')"
            )
    run_demo(out_dir, quick=quick, seed=seed, figures=figures, threads=threads)
