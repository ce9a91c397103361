"""``lfads-runs train``: train runs through a queue (local processes, Slurm or Ray)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ..executors import EXECUTORS, ExecutorOption, executor_classes
from ..pipeline import ENGINES
from ._app import cli, config_argument, echo_json, load_collection, run_selection, selected_runs


def executor_flags() -> dict[str, tuple[str, ExecutorOption]]:
    """Parameter name -> (executor, option) for every executor option with a flag.

    Two executors declaring the same flag is a programming error (raised at import).
    """
    out: dict[str, tuple[str, ExecutorOption]] = {}
    seen: dict[str, str] = {}
    for name, cls in executor_classes().items():
        for opt in cls.options:
            if opt.flag is None:
                continue
            if opt.flag in seen:
                raise RuntimeError(f"executors {seen[opt.flag]} and {name} both declare {opt.flag}")
            seen[opt.flag] = name
            out[f"{name}__{opt.name}"] = (name, opt)
    return out


def _executor_help() -> str:
    each = "; ".join(f"{name}: {cls.summary}" for name, cls in executor_classes().items())
    return f"Where runs execute (default: YAML train.executor, else local). {each}."


def queue_options(f: Callable) -> Callable:
    """Options shared by ``train`` and ``posterior`` (executor, resources, output).

    The executor's choices and its own flags (``--partition``, ``--ray-address``,
    ...) come from the executor registry.
    """
    options = [
        click.option("--executor", type=click.Choice(list(EXECUTORS)), help=_executor_help()),
        click.option("--gpus", help="GPU ids, e.g. 0,1 ('none': CPU only; default: detected)."),
        click.option("--runs-per-gpu", type=click.IntRange(min=1), help="Runs sharing one GPU."),
        click.option(
            "--max-parallel", type=click.IntRange(min=1), help="At most this many runs at once."
        ),
        click.option("--threads", type=click.IntRange(min=1), help="Torch threads per run."),
        click.option(
            "--engine",
            type=click.Choice(ENGINES),
            help="torch (ours, default) or external (the original run_lfads.py).",
        ),
        click.option("--run-lfads-py", help="run_lfads.py for --engine external."),
        click.option("--device", help="cpu, cuda or cuda:N (default: CUDA when available)."),
        click.option("--seed", type=int, help="Random seed of the engine."),
        click.option("--rerun", is_flag=True, help="Ignore done markers (training still resumes)."),
    ]
    for param, (name, opt) in executor_flags().items():
        text = f"{name}: {opt.help}."
        options.append(click.option(opt.flag, param, type=opt.click_type(), help=text))
    options += [
        click.option("--dry-run", is_flag=True, help="Only show what would run."),
        click.option("--json", "as_json", is_flag=True, help="Print JSON results on stdout."),
        click.option("-q", "--quiet", is_flag=True, help="No progress lines on stderr."),
        click.option(
            "--progress/--no-progress",
            default=None,
            help="A progress bar of the runs on stderr (default: only on a terminal).",
        ),
    ]
    for opt in reversed(options):
        f = opt(f)
    return f


def queue_kwargs(kw: dict[str, Any]) -> dict[str, Any]:
    """Library keyword arguments from the shared CLI options.

    An executor's own flag implies that executor; flags of another executor than
    ``--executor`` (or of two executors) are a usage error.
    """
    given: dict[str, dict[str, Any]] = {}
    flags: dict[str, list[str]] = {}
    for param, (name, opt) in executor_flags().items():
        value = kw.pop(param)
        if value is not None:
            given.setdefault(name, {})[opt.name] = value
            flags.setdefault(name, []).append(str(opt.flag))
    if len(given) > 1:
        parts = "; ".join(f"{', '.join(f)} of the {n} executor" for n, f in flags.items())
        raise click.UsageError(f"options of different executors cannot be combined ({parts})")
    executor = kw.get("executor")
    for name, options in given.items():
        if executor not in (None, name):
            raise click.UsageError(
                f"{', '.join(flags[name])}: options of the {name} executor; "
                f"they need --executor {name}, not --executor {executor}"
            )
        kw["executor"] = name
        kw["executor_options"] = options
    kw.setdefault("executor_options", None)
    kw["script_options"] = kw.pop("run_lfads_py")  # resolved with the YAML by _script_options
    return kw


def _script_options(rc, py: str | None):
    if py is None:
        return None
    from ..scripts import ScriptOptions

    return ScriptOptions.from_config(rc.options.get("scripts"), run_lfads_py=py)


def print_result(result, as_json: bool) -> None:
    if as_json:
        echo_json(result.as_dict())
        return
    for o in result.outcomes:
        took = f"{o.elapsed_s:7.1f} s" if o.elapsed_s is not None else " " * 9
        line = f"{o.status:<11} {o.run_spec:<24} {o.param_index:>3} {o.param_hash:<13} {took}"
        if o.reason:
            line += f"  {o.reason}"
        click.echo(line)
    click.echo(result.summary())


@cli.command("train")
@config_argument
@run_selection
@queue_options
def train(config, run, param, run_specs, params, as_json: bool, **kw: Any) -> int:
    """Train the runs of CONFIG: prepare, train, posterior means, model_params, done marker.

    RUN and PARAM (or --run-spec / --param) select runs; default: all.

    Done runs are skipped (unless --rerun) and cut-off runs resume from their
    latest checkpoint. Progress goes to stderr; stdout carries only the results.
    Exit status: 0 all runs ok, 1 some failed, 2 bad usage or configuration,
    130 interrupted.
    """
    from ..executors import train_runs

    rc = load_collection(config)
    runs = selected_runs(rc, run, param, run_specs, params)
    kw = queue_kwargs(kw)
    kw["script_options"] = _script_options(rc, kw["script_options"])
    result = train_runs(runs, **kw)
    print_result(result, as_json)
    return result.exit_code
