"""``lfads-runs scripts``: shell scripts for training with the original TensorFlow LFADS."""

from __future__ import annotations

import click

from ..layout import POSTERIOR_KINDS
from ._app import cli, config_argument, echo_json, load_collection, run_selection, selected_runs


@cli.command("scripts")
@config_argument
@run_selection
@click.option("--run-lfads-py", help="Path of run_lfads.py (default: $(which run_lfads.py)).")
@click.option("--python", "python_", help="Python interpreter in the scripts (default: python).")
@click.option("--virtualenv", help="Environment activated with 'source activate'.")
@click.option(
    "--prepend-path", is_flag=True, default=None, help="Export run_lfads.py's folder on PATH."
)
@click.option("--gpu", help="CUDA_VISIBLE_DEVICES prefix of the commands.")
@click.option("--display", type=int, help="DISPLAY=:N prefix of the training command.")
@click.option(
    "--kind", type=click.Choice(POSTERIOR_KINDS), help="Posterior kind (default: params)."
)
@click.option("--samples", "n_samples", type=click.IntRange(min=1), help="Posterior samples.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
def scripts(
    config,
    run,
    param,
    run_specs,
    params,
    run_lfads_py,
    python_,
    virtualenv,
    prepend_path,
    gpu,
    display,
    kind,
    n_samples,
    as_json: bool,
) -> None:
    """Write lfads_train.sh, lfads_posterior_mean_sample.sh and lfads_write_model_params.sh
    for the runs of CONFIG, and the collection's launch_tensorboard.sh.

    Defaults come from the YAML ``scripts:`` section.
    """
    from ..scripts import ScriptOptions, write_scripts

    rc = load_collection(config)
    runs = selected_runs(rc, run, param, run_specs, params)
    options = ScriptOptions.from_config(
        rc.options.get("scripts"),
        run_lfads_py=run_lfads_py,
        python=python_,
        virtualenv=virtualenv,
        prepend_path=prepend_path,
        cuda_visible_devices=gpu,
        display=display,
    )
    every = len(runs) == len(rc.all_runs)
    written = write_scripts(rc, None if every else runs, options, kind=kind, n_samples=n_samples)
    if as_json:
        echo_json(
            {
                "tensorboard": str(written["tensorboard"]),
                "runs": {
                    path: {k: str(v) for k, v in files.items()}
                    for path, files in written["runs"].items()
                },
            }
        )
        return
    for files in written["runs"].values():
        for f in files.values():
            click.echo(str(f))
    click.echo(str(written["tensorboard"]))
