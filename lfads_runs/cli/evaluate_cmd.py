"""``lfads-runs evaluate``: NLB metrics (bits/spike, co-bps, fp-bps) of trained runs."""

from __future__ import annotations

import click

from ..exceptions import LfadsRunsError
from ..layout import POSTERIOR_KINDS
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


@cli.command("evaluate")
@config_argument
@run_selection
@click.option(
    "--kind",
    type=click.Choice(POSTERIOR_KINDS),
    default=None,
    help="Posterior-mean kind (default: the run's posterior_mean_kind).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the full results as JSON.")
def evaluate(config, run, param, run_specs, params, kind, as_json: bool) -> int:
    """Score the posterior-mean rates of RUN PARAM (default: every run) on their inputs."""
    from ..results.evaluate import evaluate_run

    rc = load_collection(config)
    rows, failed = [], 0
    for r in selected_runs(rc, run, param, run_specs, params):
        try:
            rows.append(evaluate_run(r, kind))
        except LfadsRunsError as exc:
            failed += 1
            rows.append({"run_spec": r.name, "param_hash": r.param_hash, "error": str(exc)})
            err(f"error: {r.name} {r.param_hash}: {exc}")
    if as_json:
        echo_json(rows)
    else:
        for row in rows:
            for ds, splits in row.get("datasets", {}).items():
                v = splits["valid"]
                text = "  ".join(f"{k} {x:.4f}" for k, x in v.items())
                click.echo(f"{row['run_spec']} {row['param_hash']} {ds} valid: {text}")
    return EXIT_FAILED if failed else 0
