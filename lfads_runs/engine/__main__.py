"""``python -m lfads_runs.engine`` (run_lfads.py-compatible command line)."""

import sys

from .cli import main

sys.exit(main())
