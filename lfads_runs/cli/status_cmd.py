"""``lfads-runs status``: the state of every run, from files only (safe while a queue runs)."""

from __future__ import annotations

import click

from ._app import cli, config_argument, echo_json, load_collection, run_selection, selected_runs


def _fmt(v, spec: str = "", none: str = "-") -> str:
    if v is None:
        return none
    return format(v, spec)


def _elapsed(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


@cli.command("status")
@config_argument
@run_selection
@click.option("--tail", type=click.IntRange(min=0), default=0, help="Log lines per run (JSON).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
def status(config, run, param, run_specs, params, tail: int, as_json: bool) -> None:
    """One row per run of CONFIG: state, stage, epochs, step, best valid cost, lr, elapsed, reason.

    States: not prepared, prepared, queued, running, done, failed, stale.
    """
    from .._tempfiles import temp_files
    from ..executors.state import collection_run_status

    rc = load_collection(config)
    runs = selected_runs(rc, run, param, run_specs, params)
    rows = collection_run_status(rc, runs, tail=tail)
    leftovers = temp_files(rc.path)
    searches = _tune_rows(runs)
    if as_json:
        counts: dict[str, int] = {}
        for r in rows:
            counts[r.state] = counts.get(r.state, 0) + 1
        echo_json(
            {
                "collection": rc.name,
                "path": str(rc.path),
                "counts": counts,
                "runs": [r.as_dict() for r in rows],
                "temp_files": [t.as_dict() for t in leftovers],
                "tune": [
                    {"run_spec": run.name, "param_hash": run.param_hash, **st.as_dict()}
                    for run, st in searches
                ],
            }
        )
        return
    click.echo(
        f"{'run spec':<24} {'#':>3} {'param':<13} {'state':<12} {'stage':<9} {'epochs':>6} "
        f"{'step':>7} {'best valid':>11} {'lr':>9} {'elapsed':>9}  reason"
    )
    for r in rows:
        click.echo(
            f"{r.run_spec:<24} {r.param_index:>3} {r.param_hash:<13} {r.state:<12} "
            f"{_fmt(r.stage):<9} {_fmt(r.epochs):>6} {_fmt(r.step):>7} "
            f"{_fmt(r.best_valid_cost, '.2f'):>11} {_fmt(r.learning_rate, '.3g'):>9} "
            f"{_elapsed(r.elapsed_s):>9}  {r.reason}"
        )
    for run, st in searches:
        best = "-" if st.best_value is None else f"{st.best_member} {st.best_value:.6g}"
        click.echo(
            f"tune {run.name} {run.param_hash}: {st.state}, generation "
            f"{st.generation + 1}/{st.generations}, {st.metric} best {best}, "
            f"{st.live_members} of {st.population} members live"
        )

    _echo_temp_files(leftovers)


def _echo_temp_files(found: list) -> None:
    """Temporary files of interrupted writes: who owns them and whether they can go."""
    if not found:
        return
    mb = sum(t.size for t in found) / 1e6
    click.echo(f"\n{len(found)} temporary file(s) of interrupted writes ({mb:.1f} MB):")
    for t in found:
        if t.owner_alive:
            who = f"being written by pid {t.pid}"
        elif t.owner_alive is False:
            who = f"writer pid {t.pid} is dead; removed by the next write of {t.target}"
        elif t.host is not None:
            who = f"written on host {t.host} (pid {t.pid}); delete it once that writer is gone"
        else:
            who = "owner unknown (older lfads_runs); safe to delete when nothing is running"
        click.echo(f"  {t.path}  {who}")


def _tune_rows(runs) -> list:
    """(run, TuneStatus) for each run with a PBT search (lfads-runs tune) on disk."""
    from ..tuning.results import tune_status

    out = []
    for run in runs:
        st = tune_status(run.paths.tune_dir)
        if st is not None:
            out.append((run, st))
    return out
