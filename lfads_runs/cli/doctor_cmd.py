"""``lfads-runs doctor``: versions, native kernels, threads, GPUs and extras of this machine."""

from __future__ import annotations

import click

from ._app import cli, echo_json


@cli.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
@click.option(
    "--build-kernels",
    is_flag=True,
    help="Build the native kernels if they are not built yet (a minute); otherwise they are "
    "only looked up.",
)
def doctor(as_json: bool, build_kernels: bool) -> None:
    """What this machine offers lfads_runs: versions of Python, torch, h5py, numpy; whether the
    native kernels are built and for which instruction set; threads; GPUs seen; optional
    extras present. Include it in bug reports."""
    from ..doctor import environment_report, format_report

    report = environment_report(build_kernels=build_kernels)
    if as_json:
        echo_json(report)
    else:
        click.echo(format_report(report))
