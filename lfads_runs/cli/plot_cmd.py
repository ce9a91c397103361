"""``lfads-runs plot ...``: figures written as PNG files (headless)."""

from __future__ import annotations

from pathlib import Path

import click

from ._app import cli, config_argument, echo_json, err, load_collection, selected_runs


@cli.group("plot")
def plot() -> None:
    """Write figures of a run as PNG files."""


def _out_option(f):
    return click.option(
        "-o",
        "--out",
        "out_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("."),
        show_default=True,
        help="Folder for the PNG files.",
    )(f)


def _one_run(config, run, param):
    rc = load_collection(config)
    runs = selected_runs(rc, run, param)
    if len(runs) != 1:
        raise click.UsageError("name exactly one run: CONFIG RUN PARAM")
    return runs[0]


@plot.command("params")
@config_argument
@click.argument("run")
@click.argument("param")
@_out_option
def plot_params(config, run, param, out_dir: Path) -> None:
    """The generator recurrent matrix and the read-out matrices of RUN PARAM."""
    from ..plots.params import save_param_figures

    r = _one_run(config, run, param)
    paths = save_param_figures(r.load_model_trained_params(), out_dir)
    for p in paths:
        err(f"wrote {p}")
    echo_json([str(p) for p in paths])
