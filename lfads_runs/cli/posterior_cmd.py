"""``lfads-runs posterior``: posterior sampling (and model_params) for trained runs."""

from __future__ import annotations

from typing import Any

import click

from ..layout import POSTERIOR_KINDS
from ._app import cli, config_argument, load_collection, run_selection, selected_runs
from .train_cmd import _script_options, print_result, queue_kwargs, queue_options


@cli.command("posterior")
@config_argument
@run_selection
@click.option(
    "--kind", type=click.Choice(POSTERIOR_KINDS), help="Default: the runs' posterior_mean_kind."
)
@click.option(
    "--samples",
    "n_samples",
    type=click.IntRange(min=1),
    help="Samples per trial for posterior_sample_and_average (default: num_samples_posterior).",
)
@click.option(
    "--checkpoint",
    default="lve",
    show_default=True,
    help="lve (lowest validation error), latest, a step, or a checkpoint prefix.",
)
@queue_options
def posterior(
    config, run, param, run_specs, params, kind, n_samples, checkpoint, as_json, **kw: Any
) -> int:
    """Sample the posterior of the trained runs of CONFIG and write model_params.

    Runs without a checkpoint are skipped, and so are runs whose posterior files
    of KIND exist (unless --rerun). Exit status as for ``train``.
    """
    from ..executors import sample_posteriors

    rc = load_collection(config)
    runs = selected_runs(rc, run, param, run_specs, params)
    kw = queue_kwargs(kw)
    kw["script_options"] = _script_options(rc, kw["script_options"])
    result = sample_posteriors(runs, kind=kind, n_samples=n_samples, checkpoint=checkpoint, **kw)
    print_result(result, as_json)
    return result.exit_code
