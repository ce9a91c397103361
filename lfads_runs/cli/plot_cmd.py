"""``lfads-runs plot ...``: figures written as PNG files (headless)."""

from __future__ import annotations

from pathlib import Path

import click

from ..layout import POSTERIOR_KINDS
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


def _remember_tuned(ctx: click.Context, _param, value: bool) -> bool:
    ctx.meta["lfads_runs.tuned"] = value
    return value


_tuned_option = click.option(
    "--tuned",
    is_flag=True,
    expose_value=False,
    callback=_remember_tuned,
    help="Use the run's PBT result (tune/best/, see lfads-runs tune).",
)


def _run_arguments(f):
    """CONFIG RUN PARAM, -o/--out and --tuned, shared by every figure command."""
    for decorate in (
        _tuned_option,
        _out_option,
        click.argument("param"),
        click.argument("run"),
        config_argument,
    ):
        f = decorate(f)
    return f


def _report(paths) -> None:
    for p in paths:
        err(f"wrote {p}")
    echo_json([str(p) for p in paths])


def _one_run(config, run, param):
    rc = load_collection(config)
    runs = selected_runs(rc, run, param)
    if len(runs) != 1:
        raise click.UsageError("name exactly one run: CONFIG RUN PARAM")
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.meta.get("lfads_runs.tuned"):
        return runs[0].tuned()
    return runs[0]


@plot.command("params")
@_run_arguments
def plot_params(config, run, param, out_dir: Path) -> None:
    """The generator recurrent matrix and the read-out matrices of RUN PARAM."""
    from ..plots.params import save_param_figures

    r = _one_run(config, run, param)
    _report(save_param_figures(r.load_model_trained_params(), out_dir))


def _kind_option(f):
    return click.option(
        "--kind",
        type=click.Choice(POSTERIOR_KINDS),
        default=None,
        help="Posterior-mean kind (default: the run's posterior_mean_kind).",
    )(f)


def _dataset_option(f):
    return click.option(
        "--dataset",
        "datasets",
        multiple=True,
        help="Dataset to draw (repeatable; default: all of the run's datasets).",
    )(f)


@plot.command("factors")
@_run_arguments
@_kind_option
@_dataset_option
@click.option("--conditions", "max_conditions", type=int, default=6, show_default=True,
              help="Conditions drawn per panel.")  # fmt: skip
def plot_factors(config, run, param, out_dir: Path, kind, datasets, max_conditions: int) -> None:
    """Factor traces per condition (factors_<dataset>.png), one file per dataset."""
    from ..actions.figures import save_factor_figures

    r = _one_run(config, run, param)
    _report(
        save_factor_figures(
            r, out_dir, kind=kind, datasets=datasets or None, max_conditions=max_conditions
        )
    )


@plot.command("pca")
@_run_arguments
@_kind_option
@click.option("--conditions", "max_conditions", type=int, default=None,
              help="Draw only the first N shared conditions.")  # fmt: skip
def plot_pca(config, run, param, out_dir: Path, kind, max_conditions) -> None:
    """Condition-averaged factors of all datasets on shared top-2 PCs (stitching_pca.png)."""
    from ..actions.figures import save_pca_figure

    r = _one_run(config, run, param)
    _report(save_pca_figure(r, out_dir, kind=kind, max_conditions=max_conditions))


@plot.command("rates")
@_run_arguments
@_kind_option
@_dataset_option
def plot_rates(config, run, param, out_dir: Path, kind, datasets) -> None:
    """Inferred vs true rates (rates_vs_truth_<dataset>.png; synthetic data only)."""
    from ..actions.figures import save_rate_figures

    r = _one_run(config, run, param)
    _report(save_rate_figures(r, out_dir, kind=kind, datasets=datasets or None))


@plot.command("fitlog")
@_run_arguments
def plot_fitlog(config, run, param, out_dir: Path) -> None:
    """Training curves from fitlog.csv (training_curves.png)."""
    from ..actions.figures import save_fitlog_figure

    _report(save_fitlog_figure(_one_run(config, run, param), out_dir))


@plot.command("pbt")
@_run_arguments
def plot_pbt(config, run, param, out_dir: Path) -> None:
    """The PBT search of RUN PARAM: metric and hyperparameters per generation (pbt.png)."""
    from ..actions.figures import save_pbt_figure

    _report(save_pbt_figure(_one_run(config, run, param), out_dir))


@plot.command("alignment")
@_run_arguments
@click.option("--factors", "n_factors", type=int, default=3, show_default=True,
              help="Global PCs drawn (rows).")  # fmt: skip
def plot_alignment(config, run, param, out_dir: Path, n_factors: int) -> None:
    """Global PCs vs each dataset's alignment reconstruction (alignment_reconstruction.png)."""
    from ..actions.figures import save_alignment_figure

    r = _one_run(config, run, param)
    _report(save_alignment_figure(r, out_dir, factors=n_factors))
