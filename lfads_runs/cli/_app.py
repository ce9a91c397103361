"""The ``lfads-runs`` click group and what every subcommand shares.

Subcommands only parse options and format results; the work happens in the
library. Exit codes: 0 success, 1 some runs failed, 2 bad usage or configuration.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any

import click

from ..exceptions import ConfigError, LfadsRunsError, LfadsRunsWarning, RunNotFoundError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


DEBUG_ENV = "LFADS_RUNS_DEBUG"


def _debug_requested() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lfads_runs")
@click.option(
    "--debug",
    is_flag=True,
    help=f"Print the Python traceback of an error (or set {DEBUG_ENV}=1).",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Treat lfads_runs warnings (dropped bins, implausible values, ...) as errors.",
)
def cli(debug: bool, strict: bool) -> None:
    """Manage LFADS run collections: prepare inputs, train, load results."""
    if debug:
        os.environ[DEBUG_ENV] = "1"  # also reaches the runs' subprocesses
    if strict:
        warnings.simplefilter("error", LfadsRunsWarning)


def load_collection(config: str | Path):
    from ..collection import RunCollection

    return RunCollection.from_yaml(config)


def config_argument(f):
    return click.argument("config", type=click.Path(dir_okay=False, path_type=Path))(f)


def select_runs(rc, run_specs: tuple[str, ...], params: tuple[str, ...]):
    """Runs chosen by ``--run-spec`` names and ``--param`` indices or hashes (all by default)."""
    spec_q = list(run_specs) or None
    param_q = [int(p) if p.isdigit() else p for p in params] or None
    found = rc.find_runs(spec_q, param_q)
    return found if isinstance(found, list) else [found]


def run_selection(f):
    """Optional positional ``RUN PARAM`` plus repeatable ``--run-spec`` / ``--param``."""
    f = click.option(
        "--param",
        "params",
        multiple=True,
        help="Parameter set: 1-based index or hash (repeatable).",
    )(f)
    f = click.option("--run-spec", "run_specs", multiple=True, help="Run spec name (repeatable).")(
        f
    )
    f = click.argument("param", required=False)(f)
    return click.argument("run", required=False)(f)


def selected_runs(rc, run: str | None, param: str | None, run_specs=(), params=()):
    """The runs named by :func:`run_selection` arguments (all runs when none is given)."""
    return select_runs(
        rc, tuple(run_specs) + ((run,) if run else ()), tuple(params) + ((param,) if param else ())
    )


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=False, default=str))


def err(message: str) -> None:
    click.echo(message, err=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``lfads-runs``; returns the exit code."""
    from . import _commands  # noqa: F401  (registers the subcommands)

    try:
        rv = cli.main(args=argv, prog_name="lfads-runs", standalone_mode=False)
    except click.exceptions.Abort:
        err("aborted")
        return 130
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE
    except (ConfigError, RunNotFoundError) as exc:
        return _error(str(exc), EXIT_USAGE)
    except (LfadsRunsError, LfadsRunsWarning) as exc:  # a warning raised under --strict
        return _error(str(exc), EXIT_FAILED)
    except KeyboardInterrupt:
        err("interrupted")
        return 130
    except OSError as exc:  # the message names the file (permission, disk full, ...)
        return _error(str(exc), EXIT_FAILED)
    except Exception as exc:
        # One line for the user; the traceback is for bug reports (--debug).
        return _error(
            f"internal error ({type(exc).__name__}: {exc}); rerun with --debug "
            "for the traceback and please report it",
            EXIT_FAILED,
        )
    return rv if isinstance(rv, int) else EXIT_OK


def _format_warning(message, category, filename, lineno, line=None) -> str:
    """``warning: message`` for our warnings; Python's usual format for everyone else's."""
    if issubclass(category, LfadsRunsWarning):
        return f"warning: {message}\n"
    return _python_formatwarning(message, category, filename, lineno, line)


_python_formatwarning = warnings.formatwarning


def _error(message: str, code: int) -> int:
    """Print ``error: message`` (after the traceback with --debug) and return ``code``."""
    if _debug_requested():
        traceback.print_exc()
    err(f"error: {message}")
    return code


def run_main() -> None:
    # Only the console command reformats warnings; main() called from Python leaves them be.
    warnings.formatwarning = _format_warning
    sys.exit(main())
