"""``lfads-runs export``: one HDF5 file (optionally NWB too) per run with its results."""

from __future__ import annotations

from pathlib import Path

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

_H5_SUFFIXES = (".h5", ".hdf5")


@cli.command("export")
@config_argument
@run_selection
@click.option(
    "-o",
    "--out",
    "out",
    type=click.Path(path_type=Path),
    default=Path("."),
    show_default=True,
    help="Folder for <run>_<param_hash>.h5 files; with one run, a file name ending in .h5 works too.",
)
@click.option("--nwb", is_flag=True, help="Also write an NWB file beside each HDF5 file.")
@click.option(
    "--kind",
    type=click.Choice(POSTERIOR_KINDS),
    default=None,
    help="Posterior-mean kind (default: the run's posterior_mean_kind).",
)
@click.option("--no-params", is_flag=True, help="Leave the trained weights out.")
def export(config, run, param, run_specs, params, out: Path, nwb: bool, kind, no_params) -> int:
    """Export posterior means, trained weights, fit log and parameters of RUN PARAM
    (default: every run with results); prints the files written as JSON."""
    from ..actions.export import export_file_name

    rc = load_collection(config)
    runs = selected_runs(rc, run, param, run_specs, params)
    single_file = out.suffix.lower() in _H5_SUFFIXES
    if single_file and len(runs) != 1:
        raise click.UsageError(
            f"-o {out} names one file but {len(runs)} runs are selected; give a folder"
        )
    rows, failed = [], 0
    for r in runs:
        path = out if single_file else out / export_file_name(r)
        row = {"run_spec": r.name, "param_index": r.param_index, "param_hash": r.param_hash}
        try:
            written = r.export(path, kind=kind, model_params=not no_params, nwb=nwb)
            row.update(ok=True, h5=str(written))
            if nwb:
                row["nwb"] = str(written.with_suffix(".nwb"))
        except LfadsRunsError as exc:
            failed += 1
            row.update(ok=False, error=str(exc))
            err(f"error: {r.name} {r.param_hash}: {exc}")
        rows.append(row)
    echo_json(rows)
    return EXIT_FAILED if failed else 0
