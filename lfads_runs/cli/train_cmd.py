"""``lfads-runs train``: train runs through a queue (local processes, Slurm or Ray)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ..pipeline import ENGINES
from ._app import cli, config_argument, echo_json, load_collection, run_selection, selected_runs

EXECUTOR_NAMES = ("local", "debug", "slurm", "ray")


def queue_options(f: Callable) -> Callable:
    """Options shared by ``train`` and ``posterior`` (executor, resources, output)."""
    options = [
        click.option(
            "--executor",
            type=click.Choice(EXECUTOR_NAMES),
            help="Where runs execute (default: YAML train.executor, else local).",
        ),
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
        click.option("--partition", help="Slurm partition."),
        click.option("--time", "time_min", type=click.IntRange(min=1), help="Slurm minutes."),
        click.option("--gpus-per-node", type=click.IntRange(min=0), help="Slurm GPUs per job."),
        click.option("--mem-gb", type=click.FloatRange(min=0), help="Slurm memory per job (GB)."),
        click.option("--cpus-per-task", type=click.IntRange(min=1), help="Slurm CPUs per job."),
        click.option(
            "--slurm-cluster",
            type=click.Choice(["slurm", "local", "debug"]),
            help="submitit cluster (local/debug: run the Slurm path on this machine).",
        ),
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
    """Library keyword arguments from the shared CLI options."""
    slurm = {
        "partition": kw.pop("partition"),
        "time": kw.pop("time_min"),
        "gpus_per_node": kw.pop("gpus_per_node"),
        "mem_gb": kw.pop("mem_gb"),
        "cpus_per_task": kw.pop("cpus_per_task"),
        "cluster": kw.pop("slurm_cluster"),
    }
    executor = kw.get("executor")
    if any(v is not None for v in slurm.values()):
        if executor not in (None, "slurm"):
            raise click.UsageError("Slurm options (--partition, ...) need --executor slurm")
        kw["executor"] = "slurm"
    kw["executor_options"] = {k: v for k, v in slurm.items() if v is not None} or None
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
