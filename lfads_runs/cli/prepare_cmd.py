"""``lfads-runs prepare``: write the LFADS input files of a configuration's runs."""

from __future__ import annotations

import click

from ._app import cli, config_argument, echo_json, err, load_collection, select_runs


@cli.command("prepare")
@config_argument
@click.option("--run-spec", "run_specs", multiple=True, help="Only these run specs (repeatable).")
@click.option(
    "--param",
    "params",
    multiple=True,
    help="Only these parameter sets: 1-based index or hash (repeatable).",
)
@click.option("--regenerate", is_flag=True, help="Rewrite files even when up to date.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
def prepare(config, run_specs, params, regenerate: bool, as_json: bool) -> None:
    """Prepare lfadsInput/ for the runs of CONFIG (shared data_<hash>/ files, links)."""
    rc = load_collection(config)
    runs = select_runs(rc, run_specs, params)
    rows = []
    for run in runs:
        result = run.prepare(regenerate=regenerate)
        written = list(result.written) if result is not None else []
        rows.append(
            {
                "run_spec": run.name,
                "param_index": run.param_index,
                "param_hash": run.param_hash,
                "data_hash": run.data_hash,
                "written": written,
                "input_dir": str(run.path_lfads_input),
            }
        )
        err(
            f"prepared {run.name} {run.param_hash}: "
            + (f"wrote {', '.join(written)}" if written else "up to date")
        )
    rc.write_summary()
    if as_json:
        echo_json(rows)
