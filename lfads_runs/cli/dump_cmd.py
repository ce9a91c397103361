"""``lfads-runs dump``: write lfadsOutput/model_params from checkpoints (no TensorFlow needed)."""

from __future__ import annotations

import click

from ..exceptions import LfadsRunsError
from ._app import (
    EXIT_FAILED,
    cli,
    config_argument,
    echo_json,
    err,
    load_collection,
    run_selection,
    selected_runs,
)


@cli.command("dump")
@config_argument
@run_selection
@click.option(
    "--checkpoint",
    default="lve",
    show_default=True,
    help="lve, latest, a step, or a checkpoint prefix path.",
)
@click.option("--force", is_flag=True, help="Dump again even when model_params exists.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
def dump(config, run, param, run_specs, params, checkpoint: str, force: bool, as_json: bool) -> int:
    """Dump model_params for RUN PARAM of CONFIG (default: every run) and load it back."""
    rc = load_collection(config)
    rows, failed = [], 0
    for r in selected_runs(rc, run, param, run_specs, params):
        row = {
            "run_spec": r.name,
            "param_index": r.param_index,
            "param_hash": r.param_hash,
            "model_params": str(r.file_model_params),
        }
        try:
            tp = r.load_model_trained_params(
                dump="force" if force else "auto", checkpoint=checkpoint, reload=True
            )
            row.update(ok=True, global_step=tp.global_step, source=str(tp.source))
        except LfadsRunsError as exc:
            failed += 1
            row.update(ok=False, error=str(exc))
        rows.append(row)
    if as_json:
        echo_json(rows)
    else:
        click.echo(f"{'run spec':<24} {'#':>3} {'param':<13} {'step':>8}  model_params")
        for row in rows:
            step = row.get("global_step", "-") if row["ok"] else "FAILED"
            click.echo(
                f"{row['run_spec']:<24} {row['param_index']:>3} {row['param_hash']:<13} "
                f"{step!s:>8}  {row['model_params']}"
            )
    for row in rows:
        if not row["ok"]:
            err(f"error: {row['run_spec']} {row['param_hash']}: {row['error']}")
    return EXIT_FAILED if failed else 0
