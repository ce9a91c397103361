"""``lfads-runs build-kernels``: compile the engine's native kernels ahead of time."""

from __future__ import annotations

import time

import click

from ._app import cli


@cli.command("build-kernels")
@click.option("--force", is_flag=True, help="Rebuild even when a cached build exists.")
def build_kernels(force: bool) -> None:
    """Build (or find in the cache) the native C++ kernels of the LFADS engine.

    Training builds them on first use otherwise; building here moves that wait
    out of the first run and shows why a machine cannot use them (the engine then
    uses its pure-torch code, with one warning).
    """
    from .._optional import require

    require("torch", "building the native kernels")
    from ..engine._ext import build_native, load_native

    t0 = time.perf_counter()
    lib = build_native(force=force)
    ops = load_native(lib)
    click.echo(f"native kernels ({ops.simd()}) ready in {time.perf_counter() - t0:.1f} s: {lib}")
