"""``python -m lfads_runs``: the lfads-runs command line."""

from .cli import run_main

run_main()
