"""Executor registry and queue options: declared once, checked once, the CLI built from them."""

from __future__ import annotations

import inspect
import json
import sys
from typing import Any, ClassVar

import attrs
import click
import pytest
from _queue_helpers import cli, load, make_config
from click.testing import CliRunner

from lfads_runs import RunCollection
from lfads_runs.collection import Run
from lfads_runs.config import SECTION_KEYS, SECTION_NUMBERS
from lfads_runs.exceptions import ConfigError
from lfads_runs.executors import (
    EXECUTORS,
    Executor,
    ExecutorOption,
    QueueOptions,
    build_executor,
    executor_classes,
    get_executor,
    sample_posteriors,
    train_runs,
)
from lfads_runs.executors.debug import DebugExecutor

QUEUE_FIELDS = list(attrs.fields_dict(QueueOptions))


# ---------------------------------------------------------------- declarations agree
@pytest.mark.parametrize("name", list(EXECUTORS))
def test_declared_options_are_the_constructor_keywords(name):
    """Every keyword of an executor's constructor is declared (and nothing else)."""
    cls = executor_classes()[name]
    params = inspect.signature(cls.__init__).parameters.values()
    keywords = [p.name for p in params if p.kind == p.KEYWORD_ONLY]
    assert sorted(o.name for o in cls.options) == sorted(keywords)
    assert cls.name == name and cls.summary


@pytest.mark.parametrize("name", ["slurm", "ray"])
def test_yaml_sections_match_the_declarations(name):
    """config.py's executor sections list exactly the options the executor takes
    from YAML, and its load-time number checks agree with the declared minimums."""
    cls = executor_classes()[name]
    assert cls.section == name
    yaml_opts = {o.name: o for o in cls.options if o.in_yaml}
    assert set(SECTION_KEYS[name]) == set(yaml_opts)
    for opt in yaml_opts.values():
        rule = SECTION_NUMBERS.get((name, opt.name))
        if opt.kind in ("int", "float"):
            assert rule == (opt.kind == "int", opt.minimum), opt.name
        else:
            assert rule is None, opt.name


def test_train_section_keys_are_queue_options():
    assert set(SECTION_KEYS["train"]) == set(QueueOptions.FROM_YAML) | {"posterior_samples"}
    assert set(QueueOptions.FROM_YAML) <= set(QUEUE_FIELDS)


def _keyword_defaults(fn) -> dict[str, Any]:
    params = inspect.signature(fn).parameters.values()
    assert not any(p.kind == p.VAR_KEYWORD for p in params), f"{fn.__qualname__} hides **options"
    return {p.name: p.default for p in params if p.kind == p.KEYWORD_ONLY}


@pytest.mark.parametrize(
    "method, extra",
    [
        (Run.train, {}),
        (RunCollection.train, {}),
        (Run.sample_posterior, {"n_samples": None, "checkpoint": "lve"}),
    ],
)
def test_run_actions_show_every_queue_option(method, extra):
    """The user-facing methods take the QueueOptions fields as visible keywords,
    with the record's defaults, and say what they return."""
    defaults = {f.name: f.default for f in attrs.fields(QueueOptions)}
    assert _keyword_defaults(method) == {**extra, **defaults}
    assert inspect.signature(method).return_annotation == "QueueResult"


def test_other_actions_have_real_signatures():
    for fn in (RunCollection.tune, RunCollection.write_scripts, Run.state):
        sig = inspect.signature(fn)
        assert not any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
        assert sig.return_annotation not in ("Any", inspect.Signature.empty), fn
    assert set(_keyword_defaults(RunCollection.tune)) == {
        "spec",
        "address",
        "resume",
        "init",
        "echo",
    }


# ---------------------------------------------------------------- one check, one error
@pytest.mark.parametrize(
    "kw, message",
    [
        ({"threads": 0}, "threads: expected a value >= 1, got 0"),
        ({"threads": 1.5}, "threads: expected an integer, got float 1.5"),
        ({"runs_per_gpu": True}, "runs_per_gpu: expected an integer"),
        ({"max_parallel": "2"}, "max_parallel: expected an integer, got str '2'"),
        ({"seed": -1}, "seed: expected a value >= 0"),
        ({"engine": "tf"}, "engine must be one of torch, external"),
        ({"executor": "sge"}, "unknown executor 'sge'; choose one of: local, debug"),
        ({"gpus": "0,0"}, "gpus: a GPU is listed twice"),
        ({"gpus": True}, "gpus: expected GPU ids"),
        ({"rerun": "yes"}, "rerun: expected true or false"),
        ({"progress": 1}, "progress: expected true or false"),
        ({"device": ""}, "device: expected a non-empty string"),
        ({"executor_options": ["partition"]}, "executor_options: expected a mapping"),
        ({"script_options": "run_lfads.py"}, "script_options: expected a ScriptOptions"),
    ],
)
def test_bad_queue_option_is_one_config_error(kw, message):
    with pytest.raises(ConfigError) as info:
        QueueOptions(**kw)
    assert message in str(info.value)


def test_numpy_integers_become_ints():
    """Sweeps often produce numpy integers; the task JSON needs plain ones."""
    np = pytest.importorskip("numpy")
    q = QueueOptions(seed=np.int64(3), threads=np.int32(2), max_parallel=np.uint8(1))
    assert [type(v) for v in (q.seed, q.threads, q.max_parallel)] == [int, int, int]
    assert json.dumps(attrs.asdict(q, filter=lambda a, v: v is not None))


def test_unknown_keyword_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="unknown queue option thread; valid options: executor"):
        QueueOptions.build(thread=2)
    with pytest.raises(ConfigError, match="expected a QueueOptions"):
        QueueOptions.build({"threads": 2})  # type: ignore[arg-type]
    base = QueueOptions(threads=2, quiet=True)
    assert QueueOptions.build(base, seed=3) == QueueOptions(threads=2, quiet=True, seed=3)


def test_yaml_train_section_fills_what_is_unset():
    q = QueueOptions(threads=3).with_defaults({"threads": 1, "seed": 5, "executor": "debug"})
    assert (q.threads, q.seed, q.executor, q.engine) == (3, 5, "debug", "torch")
    assert QueueOptions().with_defaults(None).executor == "local"
    with pytest.raises(ConfigError, match="unknown executor 'sge'"):
        QueueOptions().with_defaults({"executor": "sge"})


@pytest.mark.parametrize(
    "name, kw, message",
    [
        ("slurm", {"time": 0}, "executor 'slurm' option time: expected a value >= 1, got 0"),
        ("slurm", {"mem_gb": float("nan")}, "option mem_gb: expected a finite number"),
        ("slurm", {"cluster": "pbs"}, "option cluster: expected one of slurm, local, debug"),
        ("slurm", {"additional": "mail-type=END"}, "option additional: expected a mapping"),
        ("ray", {"num_gpus": -0.5}, "executor 'ray' option num_gpus: expected a value >= 0"),
        ("local", {"start_method": "spawn"}, "option start_method: expected one of forkserver"),
        ("local", {"gpus": "0,,0"}, "gpus: a GPU is listed twice"),
        ("debug", {"echo": "no"}, "executor 'debug' option echo: expected true or false"),
        ("debug", {"partition": "gpu"}, "does not take partition; its options are: threads=None"),
    ],
)
def test_bad_executor_option_names_the_executor_and_option(name, kw, message):
    """Checked from the declarations before the backend (or its extra) is touched."""
    with pytest.raises(ConfigError) as info:
        get_executor(name, **kw)
    assert message in str(info.value)


def test_posterior_only_options_are_checked(tmp_path):
    rc = load(make_config(tmp_path, n_params=1))
    runs = rc.all_runs
    with pytest.raises(ConfigError, match="kind must be one of posterior_sample_and_average"):
        sample_posteriors(runs, kind="posterior_mode", dry_run=True)
    with pytest.raises(ConfigError, match="n_samples: expected a value >= 1, got 0"):
        runs[0].sample_posterior(n_samples=0, dry_run=True)
    with pytest.raises(ConfigError, match="unknown queue option kindd"):
        sample_posteriors(runs, kindd="posterior_push_mean")
    with pytest.raises(ConfigError, match="threads: expected a value >= 1"):
        rc.train(threads=0)
    assert not (tmp_path / "runs").exists()  # nothing written by a refused queue


# ---------------------------------------------------------------- building from YAML
SLURM_YAML = """\
train:
  threads: 3
  runs_per_gpu: 4
slurm:
  partition: gpu
  time: 30
ray:
  num_cpus: 2
"""


def test_executor_settings_from_the_collection(tmp_path):
    """YAML section < queue options < executor_options, as the executor maps them."""
    rc = load(make_config(tmp_path, n_params=1, extra=SLURM_YAML))
    q = QueueOptions(device="cpu").with_defaults(rc.options.get("train"))
    slurm = executor_classes()["slurm"].settings(rc, q)
    assert slurm == {
        "partition": "gpu",
        "time": 30,
        "folder": str(rc.layout.slurm_log_dir),
        "cpus_per_task": 3,
        "device": "cpu",
    }
    ray = executor_classes()["ray"].settings(rc, q)
    assert ray == {"num_cpus": 2, "num_gpus": 0.25, "device": "cpu"}
    local = executor_classes()["local"].settings(rc, q)
    assert local == {"threads": 3, "runs_per_gpu": 4, "device": "cpu"}
    ex = build_executor(rc, QueueOptions(executor="debug", executor_options={"echo": False}))
    assert isinstance(ex, DebugExecutor) and ex.threads == 3 and ex.echo is False
    with pytest.raises(ConfigError, match="executor 'debug' does not take partition"):
        build_executor(rc, QueueOptions(executor="debug", executor_options={"partition": "x"}))
    with pytest.raises(ConfigError, match="executor_options apply to an executor given by name"):
        build_executor(rc, QueueOptions(executor=ex, executor_options={"echo": True}))


# ---------------------------------------------------------------- the CLI from the registry
class KnobExecutor(Executor):
    """A backend registered only in this test: its flag must reach the CLI."""

    name = "knob"
    summary = "test backend"
    options: ClassVar[tuple[ExecutorOption, ...]] = (
        ExecutorOption("knob", "int", 1, "a knob", minimum=1, flag="--knob"),
    )

    def __init__(self, *, knob: int | None = None):
        self.knob = knob

    def submit(self, task, run):  # pragma: no cover - never started here
        raise NotImplementedError


def _command():
    from lfads_runs.cli.train_cmd import queue_kwargs, queue_options

    @click.command()
    @queue_options
    def cmd(as_json: bool, **kw: Any) -> None:
        kw = queue_kwargs(kw)
        click.echo(json.dumps({"executor": kw["executor"], "options": kw["executor_options"]}))

    return cmd


def test_a_registered_executor_brings_its_flags(monkeypatch):
    monkeypatch.setitem(EXECUTORS, "knob", (__name__, "KnobExecutor"))
    runner = CliRunner()
    out = runner.invoke(_command(), ["--knob", "3"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == {"executor": "knob", "options": {"knob": 3}}
    out = runner.invoke(_command(), ["--knob", "0"])
    assert out.exit_code == 2 and "--knob" in out.output
    out = runner.invoke(_command(), ["--knob", "2", "--executor", "local"])
    assert out.exit_code == 2 and "they need --executor knob, not --executor local" in out.output
    out = runner.invoke(_command(), ["--help"])
    assert "knob: a knob." in out.output and "local|debug|slurm|ray|knob" in out.output
    out = runner.invoke(_command(), ["--executor", "knob"])
    assert json.loads(out.output) == {"executor": "knob", "options": None}


def test_two_executors_declaring_one_flag_is_refused(monkeypatch):
    class Clash(KnobExecutor):
        options = (ExecutorOption("partition", "str", None, "clash", flag="--partition"),)

    monkeypatch.setattr(sys.modules[__name__], "Clash", Clash, raising=False)
    monkeypatch.setitem(EXECUTORS, "clash", (__name__, "Clash"))
    from lfads_runs.cli.train_cmd import executor_flags

    with pytest.raises(RuntimeError, match="executors slurm and clash both declare --partition"):
        executor_flags()


def test_cli_help_and_usage_errors(tmp_path):
    """``train --help`` lists every registered executor flag; misuse exits 2 with one line."""
    help_text = cli("train", "--help").stdout
    for cls in executor_classes().values():
        for opt in cls.options:
            if opt.flag:
                assert opt.flag in help_text
    cfg = make_config(tmp_path, n_params=1)
    proc = cli("train", str(cfg), "--partition", "gpu", "--ray-address", "auto")
    assert proc.returncode == 2
    assert "options of different executors cannot be combined" in proc.stderr
    assert "--partition of the slurm executor; --ray-address of the ray executor" in proc.stderr
    proc = cli("posterior", str(cfg), "--ray-address", "auto", "--executor", "debug")
    assert proc.returncode == 2 and "they need --executor ray" in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_library_keyword_calls_keep_working(tmp_path):
    """``train_runs(runs, **kw)`` as before, and with a record plus overrides."""
    rc = load(make_config(tmp_path, n_params=1))
    res = train_runs(rc.all_runs, executor="debug", threads=1, dry_run=True, quiet=True)
    assert res.dry_run and res.count("planned") == 2 and res.executor == "debug"
    rec = QueueOptions(executor="debug", dry_run=True, quiet=True)
    res = train_runs(rc.all_runs[:1], rec, threads=1)
    assert res.count("planned") == 1
    res = rc.train(runs=rc.all_runs[:1], executor="local", max_parallel=1, dry_run=True, quiet=True)
    assert res.executor == "local" and res.count("planned") == 1


@pytest.mark.parametrize(
    "section, message",
    [
        ("train: {executor: sge}", "train: executor: unknown executor 'sge'"),
        ("train: {engine: tf}", "train: engine must be one of torch, external, got 'tf'"),
        ("train: {gpus: '0,0'}", "train: gpus: a GPU is listed twice"),
        ("train: {device: 7}", "train: device: expected a non-empty string, got int 7"),
    ],
)
def test_bad_train_section_names_the_file(tmp_path, section, message):
    """Values of the YAML train: section are checked by the same record, the error names
    the file; the CLI prints it as one error line and exits 2, nothing written."""
    cfg = make_config(tmp_path, n_params=1, extra=section + "\n")
    with pytest.raises(ConfigError) as info:
        load(cfg).train(dry_run=True)
    assert str(info.value).startswith(f"{cfg.resolve()}: ") and message in str(info.value)
    proc = cli("train", str(cfg))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ") and message in proc.stderr
    assert not (tmp_path / "runs").exists()
