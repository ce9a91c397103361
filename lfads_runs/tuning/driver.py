"""Run a collection's PBT searches on Ray Tune (extras ``ray`` and ``torch``).

One search per selected (run spec x params): ``population`` members (Ray
trials named ``member_<n>``) train for ``epochs_per_generation`` epochs, then
Ray Tune's synchronous :class:`~ray.tune.schedulers.PopulationBasedTraining`
lets the bottom ``quantile`` copy a top member's checkpoint (exploit) and
perturb its searched hyperparameters (explore, :meth:`TuneSpec.explorer`).
``resume=True`` continues each member from its own last completed generation
(its folder and ``trajectory.jsonl``) after the driver or a worker was killed.
The best member's output then becomes the run folder ``tune/best/``.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from .. import layout as L
from .._atomic import LockTimeout, atomic_write_json, file_lock
from .._optional import require
from ..exceptions import ConfigError, LfadsRunsError, RunBusyError
from ..io.split_keys import read_heldout_count
from .member import member_main
from .results import best_member, read_members
from .spec import TuneSpec

if TYPE_CHECKING:
    from ..collection import Run, RunCollection

__all__ = [
    "TuneOutcome",
    "first_generation_epochs",
    "member_resources",
    "member_trainable",
    "tune_collection",
    "tuned_runs",
]

_EXPERIMENT = "pbt"  #: Ray Tune's experiment folder inside tune/ray/


@attrs.frozen
class TuneOutcome:
    """The result of one search."""

    run: Any  #: the base Run
    best_member: str
    best_value: float
    hparams: dict[str, float]
    best_dir: Path


def tuned_runs(rc: RunCollection, spec: TuneSpec, runs: Iterable[Run] | None = None) -> list[Run]:
    """The runs a search covers: ``runs``, else those the ``tune:`` section names (default all)."""
    if runs is not None:
        return list(runs)
    return rc.find_runs(list(spec.run_specs or ()), list(spec.params or ()))


def tune_collection(
    rc: RunCollection,
    runs: Iterable[Run] | None = None,
    *,
    spec: TuneSpec | None = None,
    address: str | None = None,
    resume: bool = False,
    init: Mapping[str, Any] | None = None,
    echo: Callable[[str], Any] = print,
) -> list[TuneOutcome]:
    """Run (or resume) a PBT search for each selected run; see the module docstring.

    ``address`` overrides the section's (``"auto"``, ``"ray://host:10001"``);
    without one a local Ray instance with this machine's CPUs and GPUs is started
    (``init``: extra ``ray.init`` arguments) and shut down afterwards.
    """
    spec = spec or rc.options.get("tune")
    if spec is None:
        raise ConfigError(f"{rc.source or rc.name}: the configuration has no 'tune:' section")
    ray = require("ray", "PBT tuning (lfads-runs tune)")
    require("ray.tune", "PBT tuning (lfads-runs tune)")  # the extra installs ray[tune]
    require("torch", "PBT tuning (lfads-runs tune)")
    selected = tuned_runs(rc, spec, runs)
    address = address or spec.address
    with contextlib.ExitStack() as locks:
        for run in selected:  # before Ray starts: a busy search starts nothing
            lock = run.paths.tune_dir / L.TUNE_LOCK_FILE
            try:
                locks.enter_context(file_lock(lock, timeout=0))
            except LockTimeout:
                raise RunBusyError(
                    f"{run.paths.tune_dir}: another lfads-runs tune is running this search"
                ) from None
        return _tune_all(ray, selected, spec, address, resume, init, echo)


def _tune_all(ray, selected, spec, address, resume, init, echo) -> list[TuneOutcome]:
    started = False
    if not ray.is_initialized():
        kwargs = {"include_dashboard": False, "log_to_driver": False, **dict(init or {})}
        # "local": a new instance even where an old `ray start` left its address behind
        # (ray.init() without one would join that cluster and refuse num_cpus).
        kwargs["address"] = address or "local"
        if address:
            check_reachable(address)
        try:
            ray.init(**kwargs)
        except Exception as exc:  # ConnectionError, ValueError, RuntimeError, by version
            raise LfadsRunsError(
                f"cannot start or reach Ray{f' at {address!r}' if address else ''}: "
                f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            ) from None
        started = True
    try:
        return [_tune_one(run, spec, ray, resume=resume, echo=echo) for run in selected]
    finally:
        if started:
            with contextlib.suppress(Exception):
                ray.shutdown()


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail at once when nothing answers at a ``host:port`` or ``ray://host:port``
    address: Ray itself keeps retrying such an address for minutes."""
    if address in ("auto", "local"):
        return
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        return  # not host:port: Ray's own error names what is wrong
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise LfadsRunsError(
            f"cannot start or reach Ray at {address!r}: nothing answers on {host}:{port} "
            f"({exc.strerror or type(exc).__name__}); start the cluster (ray start --head) "
            "or check the address"
        ) from None


def member_resources(spec: TuneSpec, ray: Any) -> dict[str, float]:
    """What Ray reserves for each member: ``cpus_per_member`` CPUs and
    ``gpus_per_member`` GPUs, by default an equal share of the cluster's GPUs
    (``GPUs / population``, at most one each; none without GPUs)."""
    gpus = spec.gpus_per_member
    if gpus is None:
        total = float(ray.cluster_resources().get("GPU", 0.0))
        gpus = min(1.0, total / spec.population) if total else 0.0
    return {"cpu": float(spec.cpus_per_member), "gpu": float(gpus)}


def member_trainable(tune: Any, setup: dict[str, Any], resources: dict[str, float]) -> Any:
    """The Ray Tune trainable of a search's members, with its resource request."""
    return tune.with_resources(tune.with_parameters(member_main, setup=setup), resources)


def _setup(run: Run, spec: TuneSpec, ray: Any) -> tuple[dict[str, Any], float]:
    gpus = member_resources(spec, ray)["gpu"]
    setup = {
        "input_dir": str(run.path_lfads_input),
        "tune_dir": str(run.paths.tune_dir),
        "hps": run.params.to_hparams(run.n_datasets).as_dict(),
        "metric": spec.metric,
        "metric_window": spec.metric_window,
        "mode": spec.mode,
        "epochs_per_generation": spec.epochs_per_generation,
        "generations": spec.generations,
        "search": {r.name: r.hp_name for r in spec.search},
        "seed": spec.seed,
        "device": "cuda" if gpus > 0 else "cpu",
        "threads": max(1, int(spec.cpus_per_member)),
    }
    return setup, gpus


def first_generation_epochs(run: Run, spec: TuneSpec) -> int:
    """Epochs of generation 0: through the KL and L2 ramps, then ``epochs_per_generation``.

    As tune_tf2 does: during the ramps the costs of members are not comparable
    yet (and the weights still change fast), so nothing is ranked before they end.
    """
    from ..io.lfads_input import read_input_summary

    hps = run.hparams()
    ends = [hps.kl_start_step + hps.kl_increase_steps]
    if hps.l2_is_on:
        ends.append(hps.l2_start_step + hps.l2_increase_steps)
    steps = 0  # Adam updates per epoch: every dataset's training trials in full batches
    for f in run.input_files.values():
        steps += -(-read_input_summary(f).n_train // hps.batch_size)
    ramp = -(-max(ends) // max(steps, 1))
    return spec.epochs_per_generation + ramp


def _check_metric(run: Run, spec: TuneSpec) -> None:
    """The ranking metric must exist for this run, or every member would fail."""
    hps = run.hparams()
    need = None
    if spec.metric in ("valid_cobps", "valid_nll_heldout"):
        for ds, f in run.input_files.items():
            if read_heldout_count(f) == 0:
                need = f"held-out neurons (dataset {ds!r} has no heldout_neurons)"
    elif spec.metric == "valid_nll_sv" and hps.sv_rate <= 0:
        need = "sample validation (c_sv_rate > 0)"
    elif spec.metric in ("valid_fpbps", "valid_nll_fp") and hps.fp_len <= 0:
        need = "forward prediction (c_fp_len > 0)"
    if need:
        raise ConfigError(f"{run.name} {run.param_hash}: tune.metric {spec.metric!r} needs {need}")


def _spec_record(spec: TuneSpec) -> dict[str, Any]:
    d = spec.as_dict()
    d.pop("address", None)  # where it ran may change between a start and a resume
    return json.loads(json.dumps(d))


def _tune_one(run: Run, spec: TuneSpec, ray: Any, *, resume: bool, echo) -> TuneOutcome:
    from ray import tune
    from ray.tune.schedulers import PopulationBasedTraining

    tune_dir = run.paths.tune_dir
    state_file = tune_dir / L.TUNE_STATE_FILE
    experiment = tune_dir / L.TUNE_RAY_DIR / _EXPERIMENT
    record = _spec_record(spec)
    previous = None
    with contextlib.suppress(OSError, ValueError):
        previous = json.loads(state_file.read_text(encoding="utf-8"))
    if previous is not None:
        if not resume:
            raise LfadsRunsError(
                f"{tune_dir}: a search exists (state {previous.get('state')!r}); "
                "pass --resume to continue it, or delete the folder to start again"
            )
        recorded = dict(previous.get("spec") or {})
        # searches begun before metric_window existed resume with the section's
        recorded.setdefault("metric_window", record["metric_window"])
        recorded.setdefault("burn_in_generations", 0)
        if recorded != record:
            raise ConfigError(
                f"{tune_dir}: the 'tune:' section changed since this search began; "
                "restore it, or delete the folder to start again"
            )
    if previous is not None and previous.get("state") == "done" and "best" in previous:
        best = previous["best"]
        if not (run.paths.tuned_paths().path_lfads_output / L.MODEL_PARAMS).is_file():
            export_best(run, best["member"])
        echo(f"{run.name} {run.param_hash}: the search is complete (best {best['member']})")
        return TuneOutcome(
            run,
            best["member"],
            float(best["value"]),
            dict(best["hparams"]),
            run.paths.tuned_paths().path,
        )
    run.prepare()
    _check_metric(run, spec)
    setup, gpus = _setup(run, spec, ray)
    setup["first_generation_epochs"] = first_generation_epochs(run, spec)
    setup["resume"] = previous is not None
    # After a kill the members may stand one generation apart: the ones behind
    # catch up without reporting (member.py), so the first ranking is like for like.
    setup["catch_up_to"] = 1 + max((m.generation for m in read_members(tune_dir)), default=-1)
    trainable = member_trainable(tune, setup, {"cpu": spec.cpus_per_member, "gpu": gpus})
    info = {"spec": record, "mode": spec.mode, "run_spec": run.name, "param_hash": run.param_hash}
    atomic_write_json(state_file, {**info, "state": "running", "started": time.time()})
    # Ray's own experiment restore is not used: a synchronous PBT restored by Ray can
    # wait forever on a clone. A resume is a new experiment in which each member
    # continues its own folder from its last completed generation (member.py).
    inits = spec.initial_configs()
    if previous is not None:
        echo(f"{run.name} {run.param_hash}: resuming the PBT search in {tune_dir}")
        for m in read_members(tune_dir):
            idx = L.member_index(m.name)
            if idx is None or idx >= spec.population:
                continue
            st = m.state or {}
            if st.get("state") == "training" and st.get("generation") == m.generation + 1:
                inits[idx] = dict(st.get("hparams") or inits[idx])  # the interrupted generation's
            elif m.rows:
                inits[idx] = dict(m.rows[-1]["hparams"])
    else:
        echo(
            f"{run.name} {run.param_hash}: PBT, {spec.population} members x "
            f"{spec.generations} generations x {spec.epochs_per_generation} epochs "
            f"(generation 0: {setup['first_generation_epochs']}, through the ramps) in {tune_dir}"
        )
    if experiment.exists():
        shutil.rmtree(experiment)
    start = setup["catch_up_to"]
    tuner = _new_tuner(tune, PopulationBasedTraining, trainable, spec, tune_dir, inits, start)
    try:
        with _seeded_pbt_random(spec.seed, start):
            grid = tuner.fit()
    except KeyboardInterrupt:
        atomic_write_json(state_file, {**info, "state": "interrupted", "ended": time.time()})
        raise
    errors = list(getattr(grid, "errors", []) or [])
    members = read_members(tune_dir)
    done = [m for m in members if m.generation == spec.generations - 1]
    if errors or len(done) < spec.population:
        atomic_write_json(state_file, {**info, "state": "failed", "ended": time.time()})
        first = str(errors[0]).strip().splitlines()[-1] if errors else "members stopped early"
        raise LfadsRunsError(
            f"{run.name} {run.param_hash}: {len(errors)} PBT member(s) failed; "
            f"resume with --resume after fixing the cause. First error: {first}"
        )
    best = best_member(members, spec.mode)
    if best is None:
        atomic_write_json(state_file, {**info, "state": "failed", "ended": time.time()})
        raise LfadsRunsError(f"{tune_dir}: no member reached a finite {spec.metric}")
    best_dir = export_best(run, best.name, setup["device"])
    last = best.rows[-1]
    summary = {
        "member": best.name,
        "generation": last["generation"],
        "metric": spec.metric,
        "value": last["value"],
        "hparams": last["hparams"],
    }
    atomic_write_json(tune_dir / L.TUNE_BEST_FILE, summary)
    atomic_write_json(state_file, {**info, "state": "done", "ended": time.time(), "best": summary})
    echo(f"{run.name} {run.param_hash}: best {best.name}, {spec.metric} = {last['value']:.6g}")
    return TuneOutcome(run, best.name, float(last["value"]), dict(last["hparams"]), best_dir)


@contextlib.contextmanager
def _seeded_pbt_random(seed: int, start: int) -> Iterator[None]:
    """Ray's PBT draws the member a worse one copies with the ``random`` module its
    module imported; while the search runs, that name is a generator of its own, seeded
    from the search's seed. (Seeding the shared ``random`` is not enough: other Ray code
    draws from it as often as the machine's load makes it poll.) Without that module
    attribute, Ray's own choice stands."""
    from ray.tune.schedulers import pbt as ray_pbt

    shared = getattr(ray_pbt, "random", None)
    if shared is not random:
        yield
        return
    ray_pbt.random = random.Random(  # type: ignore[assignment]
        int(np.random.SeedSequence([int(seed), int(start), 1]).generate_state(1)[0])
    )
    try:
        yield
    finally:
        ray_pbt.random = shared


def _new_tuner(
    tune: Any,
    pbt_cls: Any,
    trainable: Any,
    spec: TuneSpec,
    tune_dir: Path,
    inits: list[dict[str, float]],
    start: int = 0,
) -> Any:
    space: dict[str, Any] = {"member": tune.grid_search(list(range(spec.population)))}
    for r in spec.search:
        space[r.name] = tune.sample_from(
            lambda config, n=r.name: inits[int(config["member"])][n]  # noqa: B023
        )
    scheduler = pbt_cls(
        time_attr="training_iteration",
        metric=spec.metric,
        mode=spec.mode,
        perturbation_interval=1,  # one report per generation
        # Ray counts reports of this experiment: a resume's first is generation `start`.
        # Generation g (0-based) is report g - start + 1, and exploits follow it from
        # g = burn_in_generations on.
        burn_in_period=max(0, spec.burn_in_generations - start + 1),
        quantile_fraction=spec.quantile,
        custom_explore_fn=spec.explorer(start),
        synch=True,
    )
    return tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(
            scheduler=scheduler,
            num_samples=1,
            trial_name_creator=lambda t: L.member_name(int(t.config["member"])),
            trial_dirname_creator=lambda t: L.member_name(int(t.config["member"])),
            reuse_actors=False,
        ),
        run_config=tune.RunConfig(
            name=_EXPERIMENT,
            storage_path=str(tune_dir / L.TUNE_RAY_DIR),
            stop={"training_iteration": spec.generations},
            # exploit clones a checkpoint other members may still need: keep a few
            checkpoint_config=tune.CheckpointConfig(num_to_keep=4),
            failure_config=tune.FailureConfig(max_failures=3),
            verbose=0,
        ),
    )


def export_best(run: Run, member: str, device: str = "cpu") -> Path:
    """Make ``tune/best/`` a normal run folder from ``member``'s output.

    Its ``lfadsInput/`` links the run's shared input files; its ``lfadsOutput/``
    is the member's, without the lineage's LVE checkpoints (they may predate the
    last generations), so every "lve" choice falls back to the final checkpoint.
    ``model_params`` and the posterior means are written before the folder
    replaces any previous ``best/`` in one rename.
    """
    from ..data import input_file_names, link_inputs
    from ..dump import dump_model_params
    from ..engine import sample_posterior
    from ..io.checkpoint_state import read_checkpoint_state
    from ..io.checkpoints import checkpoint_files

    paths = run.paths.tuned_paths()
    final = paths.path
    tmp = final.with_name(f".{final.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    out = tmp / L.LFADS_OUTPUT_DIR
    shutil.copytree(run.paths.member_dir(L.member_index(member) or 0) / L.LFADS_OUTPUT_DIR, out)
    lve = read_checkpoint_state(out, L.CHECKPOINT_LVE_POINTER)
    if lve is not None:
        regular = read_checkpoint_state(out, L.CHECKPOINT_POINTER)
        keep = {p.name for p in regular.all_model_checkpoint_paths} if regular else set()
        for prefix in lve.all_model_checkpoint_paths:
            if prefix.name not in keep:
                for f in checkpoint_files(out / prefix.name):
                    f.unlink()
        (out / L.CHECKPOINT_LVE_POINTER).unlink()
    names = [n for ds in run.dataset_names for n in input_file_names(ds)]
    link_inputs(run.path_common_data, tmp / L.LFADS_INPUT_DIR, names)
    dump_model_params(out, checkpoint="latest")
    sample_posterior(
        tmp / L.LFADS_INPUT_DIR,
        out,
        run.params.to_hparams(run.n_datasets),
        kind=run.params.posterior_mean_kind,
        checkpoint="latest",
        device=device,
        seed=0,
        progress=False,
    )
    old = final.with_name(f".{final.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    if old.exists():
        shutil.rmtree(old)
    return final
