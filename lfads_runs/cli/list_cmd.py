"""``lfads-runs list``: every run of a configuration and which of its files exist."""

from __future__ import annotations

import click

from ._app import cli, config_argument, echo_json, load_collection


@cli.command("list")
@config_argument
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
def list_runs(config, as_json: bool) -> None:
    """List the runs of CONFIG and which inputs and outputs exist on disk."""
    rc = load_collection(config)
    status = rc.inventory()
    if as_json:
        echo_json(status.as_dict())
        return
    click.echo(
        f"{rc.name}: {rc.path}  ({len(rc.run_specs)} run specs x {len(rc.params)} parameter sets)"
    )
    header = f"{'run spec':<24} {'#':>3} {'param':<13} {'data':<12} inputs ckpts params post  done"
    click.echo(header)
    for r in status.runs:
        post = "yes" if any(r.posterior.values()) else "-"
        click.echo(
            f"{r.run_spec:<24} {r.param_index:>3} {r.param_hash:<13} {r.data_hash:<12} "
            f"{'yes' if r.inputs else '-':<6} {r.checkpoints + r.lve_checkpoints:>5} "
            f"{'yes' if r.model_params else '-':<6} {post:<5} {'yes' if r.done else '-'}"
        )
    for u in status.unknown_param_folders:
        what = u.params.get("differences") if u.params else "no params.json"
        click.echo(f"not in config: {u.path} ({what})")
