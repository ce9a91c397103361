"""``lfads-runs tune``: population-based training (the YAML ``tune:`` section) on Ray Tune."""

from __future__ import annotations

import click

from ._app import cli, config_argument, load_collection, run_selection, selected_runs


@cli.command("tune")
@config_argument
@run_selection
@click.option(
    "--address",
    "--ray-address",  # the queue's spelling (train --executor ray --ray-address ...)
    "address",
    default=None,
    help="Ray cluster: 'auto' or 'ray://host:10001' (default: the section's, else a local Ray).",
)
@click.option("--resume", is_flag=True, help="Continue searches from their last generation.")
@click.option(
    "--num-cpus",
    type=click.IntRange(min=1),
    default=None,
    help="CPUs of a local Ray instance (default: all of this machine's).",
)
def tune(config, run, param, run_specs, params, address, resume: bool, num_cpus) -> None:
    """A PBT search for each selected run of CONFIG (default: those its tune: section names).

    The best member of each search becomes the run folder tune/best/ of the run
    (rc.find_runs(spec, param, tuned=True) in Python).
    """
    from ..tuning.driver import tune_collection

    rc = load_collection(config)
    runs = None
    if run or param or run_specs or params:
        runs = selected_runs(rc, run, param, run_specs, params)
    init = {"num_cpus": num_cpus} if num_cpus else None
    for o in tune_collection(rc, runs, address=address, resume=resume, init=init, echo=click.echo):
        click.echo(f"tuned model: {o.best_dir}")
