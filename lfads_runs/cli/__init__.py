"""Command-line interface ``lfads-runs`` (one module per command group)."""

from ._app import cli, main, run_main

__all__ = ["cli", "main", "run_main"]
