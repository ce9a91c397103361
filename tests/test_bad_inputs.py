"""Bad inputs, as a new user makes them: one clear error, the culprit named, the tree unchanged.

Every case of the tables below builds a small real tree (HDF5 datasets written by
``lfads_runs.data.synthetic``, a YAML configuration, for the trained-file cases a
run trained by the engine), breaks one thing, snapshots every path with its
content hash, runs the action and then checks:

- the error is an :class:`~lfads_runs.exceptions.LfadsRunsError` of the expected type
  (CLI: exit status 1 or 2, exactly one ``error:`` line, no traceback);
- its message names the culprit (file, key, field or name);
- the tree is byte-for-byte what it was before (nothing created, nothing left).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np
import pytest
from _two_datasets import BASE, snapshot, the_run, train_one_run, tree, write_datasets

from lfads_runs import RunCollection
from lfads_runs.exceptions import (
    CheckpointError,
    ConfigError,
    DataError,
    LfadsRunsError,
    MissingOutputError,
    ModelParamsError,
    OutputError,
)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> Path:
    return write_datasets(tmp_path_factory.mktemp("datasets"))


def load_and_prepare(tmp: Path) -> Callable[[], Any]:
    return lambda: RunCollection.from_yaml(tmp / "config.yaml").prepare()


def load_only(tmp: Path) -> Callable[[], Any]:
    return lambda: RunCollection.from_yaml(tmp / "config.yaml")


class Case(NamedTuple):
    id: str
    setup: Callable[[Path], Callable[[], Any]]  #: breaks the tree, returns the action
    error: type
    culprit: str


def cfg(old: str, new: str, action=load_only) -> Callable[[Path], Callable[[], Any]]:
    """A case that replaces ``old`` by ``new`` in the base configuration."""

    def setup(tmp: Path) -> Callable[[], Any]:
        text = BASE.replace(old, new)
        assert text != BASE, old
        (tmp / "config.yaml").write_text(text)
        return action(tmp)

    return setup


def param(text: str, action=load_only):
    return cfg("c_batch_size: 5}", f"c_batch_size: 5, {text}}}", action)


def raw_config(text: str, action=load_only):
    def setup(tmp: Path):
        (tmp / "config.yaml").write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
        return action(tmp)

    return setup


P = "c_batch_size: 5}"
LONG = "n" * 300

CONFIG_CASES = [
    Case("yaml-syntax", raw_config("name: [unclosed\n"), ConfigError, "line"),
    Case("yaml-tab-indent", raw_config("name: x\n\troot: y\n"), ConfigError, "config.yaml"),
    Case("duplicate-key", cfg("root: ./runs\n", "root: ./runs\nroot: ./r2\n"), ConfigError, "root"),
    Case("unknown-top-key", cfg("run_specs:", "run_spec: []\nrun_specs:"), ConfigError, "run_spec"),
    Case("missing-name", cfg("name: bad\n", ""), ConfigError, "name"),
    Case("empty-file", raw_config(""), ConfigError, "config.yaml"),
    Case("top-level-list", raw_config("- a\n- b\n"), ConfigError, "mapping"),
    Case("not-utf8", raw_config(b"name: \xff\xfe\n"), ConfigError, "config.yaml"),
    Case("name-newline", cfg("name: bad", 'name: "ba\\nd"'), ConfigError, "control"),
    Case("name-escape", cfg("name: bad", 'name: "ba\\x1bd"'), ConfigError, "control"),
    Case("name-300-bytes", cfg("name: bad", f"name: {LONG}"), ConfigError, "255"),
    Case("name-slash", cfg("name: bad", "name: a/b"), ConfigError, "a/b"),
    Case("name-dotdot", cfg("name: bad", "name: '..'"), ConfigError, ".."),
    Case("name-leading-dot", cfg("name: bad", "name: .hidden"), ConfigError, ".hidden"),
    Case("spec-name-tab", cfg("name: both", 'name: "bo\\tth"'), ConfigError, "control"),
    Case("spec-name-300", cfg("name: both", f"name: {LONG}"), ConfigError, "255"),
    Case("spec-name-empty", cfg("name: both", "name: ''"), ConfigError, "run spec name"),
    Case(
        "dataset-name-200",
        cfg("name: ds2, file", f"name: {'d' * 200}, file"),
        ConfigError,
        "too long",
    ),
    Case("dataset-name-space", cfg("name: ds2, file", "name: 'd s', file"), ConfigError, "d s"),
    Case(
        "dataset-name-newline",
        cfg("name: ds2, file", 'name: "d\\ns", file'),
        ConfigError,
        "control",
    ),
    Case("duplicate-dataset", cfg("name: ds2, file", "name: ds1, file"), ConfigError, "ds1"),
    Case(
        "duplicate-spec",
        cfg("params:", "  - {name: both, datasets: [ds1]}\nparams:"),
        ConfigError,
        "both",
    ),
    Case("spec-unknown-dataset", cfg("[ds1, ds2]", "[ds1, ds9]"), ConfigError, "ds9"),
    Case("spec-no-datasets", cfg("[ds1, ds2]", "[]"), ConfigError, "datasets"),
    Case(
        "no-run-specs",
        cfg("  - {name: both, datasets: [ds1, ds2]}\n", ""),
        ConfigError,
        "run_specs",
    ),
    Case(
        "params-not-list",
        raw_config(BASE.split("params:")[0] + "params: hello\n"),
        ConfigError,
        "params",
    ),
    Case("param-inf", param("c_learning_rate_init: .inf"), ConfigError, "c_learning_rate_init"),
    Case("param-minus-inf", param("c_max_grad_norm: -.inf"), ConfigError, "c_max_grad_norm"),
    Case("param-1e400", param("c_l2_gen_scale: 1e400"), ConfigError, "c_l2_gen_scale"),
    Case("param-nan", param("c_kl_ic_weight: .nan"), ConfigError, "c_kl_ic_weight"),
    Case("param-nan-string", param("c_keep_prob: nan"), ConfigError, "c_keep_prob"),
    Case("param-inf-int", param("c_factors_dim: .inf"), ConfigError, "c_factors_dim"),
    Case(
        "param-inf-prepare",
        param("c_learning_rate_init: .inf", load_and_prepare),
        ConfigError,
        "c_learning_rate_init",
    ),
    Case("param-negative", param("c_gen_dim: -1"), ConfigError, "c_gen_dim"),
    Case("param-fraction", param("c_gen_dim: 2.5"), ConfigError, "c_gen_dim"),
    Case("param-word", param("c_gen_dim: many"), ConfigError, "c_gen_dim"),
    Case("param-bool-int", param("c_max_epochs: true"), ConfigError, "c_max_epochs"),
    Case("param-unknown", param("c_factor_dim: 3"), ConfigError, "c_factor_dim"),
    Case("param-choice", param("c_output_dist: poison"), ConfigError, "c_output_dist"),
    Case("param-keep-prob", param("c_keep_prob: 2"), ConfigError, "c_keep_prob"),
    Case("param-bin-zero", param("spikeBinMs: 0"), ConfigError, "spike"),
    Case("param-list", param("c_gen_dim: [1, 2]"), ConfigError, "c_gen_dim"),
    Case("param-huge-int", param("c_gen_dim: 99999999999"), ConfigError, "c_gen_dim"),
    Case(
        "sweep-not-list",
        cfg("params:", "sweep: {grid: {c_gen_dim: 4}}\nparams:"),
        ConfigError,
        "sweep",
    ),
    Case(
        "sweep-inf",
        cfg("params:", "sweep: {grid: {c_l2_gen_scale: [1, .inf]}}\nparams:"),
        ConfigError,
        "c_l2_gen_scale",
    ),
    Case(
        "params-class",
        cfg("params:", "params_class: no.such:Thing\nparams:"),
        ConfigError,
        "no.such",
    ),
    Case(
        "dump-command-quote",
        cfg("params:", 'dump_command: "run \'x"\nparams:'),
        ConfigError,
        "dump_command",
    ),
    Case(
        "dump-command-number",
        cfg("params:", "dump_command: 3\nparams:"),
        ConfigError,
        "dump_command",
    ),
    Case(
        "dump-command-empty",
        cfg("params:", "dump_command: []\nparams:"),
        ConfigError,
        "dump_command",
    ),
    Case(
        "slurm-time-negative",
        cfg("params:", "slurm: {time: -5}\nparams:"),
        ConfigError,
        "slurm.time",
    ),
    Case(
        "slurm-mem-inf",
        cfg("params:", "slurm: {mem_gb: .inf}\nparams:"),
        ConfigError,
        "slurm.mem_gb",
    ),
    Case(
        "train-threads-word",
        cfg("params:", "train: {threads: many}\nparams:"),
        ConfigError,
        "train.threads",
    ),
    Case("comment-not-string", cfg("params:", "comment: [1]\nparams:"), ConfigError, "comment"),
    Case("version-word", cfg("params:", "version: new\nparams:"), ConfigError, "version"),
]


def _root_is_file(tmp: Path):
    (tmp / "runs").write_text("I am a file\n")
    return load_and_prepare(tmp)


def _root_under_file(tmp: Path):
    (tmp / "afile").write_text("a file where a folder belongs\n")
    (tmp / "config.yaml").write_text(BASE.replace("root: ./runs", "root: ./afile/runs"))
    return load_and_prepare(tmp)


def _data(write: Callable[[Path], None], name: str = "ds1.h5", action=load_and_prepare):
    """A case that replaces dataset file ``name`` (and points ds1 at it)."""

    def setup(tmp: Path):
        (tmp / "data" / "ds1.h5").unlink()
        write(tmp / "data" / name)
        if name != "ds1.h5":
            (tmp / "config.yaml").write_text(BASE.replace("file: ds1.h5", f"file: {name}"))
        return action(tmp)

    return setup


def _h5(**arrays):
    def write(p: Path) -> None:
        with h5py.File(p, "w") as f:
            for k, v in arrays.items():
                f[k] = v

    return write


RNG = np.random.default_rng(0)
COUNTS = RNG.poisson(1.0, (40, 60, 6)).astype(np.float64)
TIME = np.arange(60.0)
COND = np.repeat([1.0, 2.0], 20)


def _good(**over):
    d = {"counts": COUNTS, "time_ms": TIME, "condition_id": COND, **over}
    return {k: v for k, v in d.items() if v is not None}


def _truncated_npz(p: Path) -> None:
    np.savez(p, **_good())
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def _corrupt_chunk(p: Path) -> None:
    with h5py.File(p, "w") as f:
        f.create_dataset("counts", data=COUNTS, chunks=(10, 60, 6), compression="gzip")
        f["time_ms"] = TIME
        f["condition_id"] = COND
    with h5py.File(p, "r") as f:
        info = f["counts"].id.get_chunk_info(1)
    raw = bytearray(p.read_bytes())
    for i in range(info.byte_offset, info.byte_offset + min(info.size, 64)):
        raw[i] ^= 0x5A
    p.write_bytes(bytes(raw))


def _truncated_h5(p: Path) -> None:
    _h5(**_good())(p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 3])


def _ragged_loader(tmp: Path):
    (tmp / "data" / "ragged_loader.py").write_text(
        "def load(path=None):\n    return {'counts': [[[1, 2]], [[1]]]}\n"
    )
    text = BASE.replace("{name: ds1, file: ds1.h5}", "{name: ds1, loader: 'ragged_loader:load'}")
    (tmp / "config.yaml").write_text(text)
    return load_and_prepare(tmp)


def _raising_loader(tmp: Path):
    (tmp / "data" / "boom_loader.py").write_text(
        "def load(path=None):\n    raise KeyError('trial_table')\n"
    )
    text = BASE.replace("{name: ds1, file: ds1.h5}", "{name: ds1, loader: 'boom_loader:load'}")
    (tmp / "config.yaml").write_text(text)
    return load_and_prepare(tmp)


def _dataset_dir(tmp: Path):
    (tmp / "data" / "ds1.h5").unlink()
    (tmp / "data" / "ds1.h5").mkdir()
    return load_and_prepare(tmp)


def _dataset_missing(tmp: Path):
    (tmp / "data" / "ds1.h5").unlink()
    return load_and_prepare(tmp)


def _dataset_link_loop(tmp: Path):
    (tmp / "data" / "ds1.h5").unlink()
    os.symlink("ds1.h5", tmp / "data" / "ds1.h5")
    return load_and_prepare(tmp)


DATA_CASES = [
    Case("root-is-file", _root_is_file, OutputError, "runs"),
    Case("root-under-file", _root_under_file, OutputError, "afile"),
    Case("dataset-is-folder", _dataset_dir, DataError, "ds1.h5"),
    Case("dataset-missing", _dataset_missing, DataError, "ds1.h5"),
    Case("dataset-link-loop", _dataset_link_loop, ConfigError, "ds1.h5"),
    Case("npz-truncated", _data(_truncated_npz, "ds1.npz"), DataError, "ds1.npz"),
    Case("npz-not-zip", _data(lambda p: p.write_text("hello"), "ds1.npz"), DataError, "ds1.npz"),
    Case("npz-empty", _data(lambda p: p.write_bytes(b""), "ds1.npz"), DataError, "ds1.npz"),
    Case(
        "npz-no-counts",
        _data(lambda p: np.savez(p, spikes_x=COUNTS), "ds1.npz"),
        DataError,
        "counts",
    ),
    Case(
        "npz-object-array",
        _data(lambda p: np.savez(p, counts=np.array([COUNTS, None], dtype=object)), "ds1.npz"),
        DataError,
        "counts",
    ),
    Case("h5-corrupt-chunk", _data(_corrupt_chunk), DataError, "ds1.h5"),
    Case("h5-truncated", _data(_truncated_h5), DataError, "ds1.h5"),
    Case("h5-text", _data(lambda p: p.write_text("not hdf5")), DataError, "ds1.h5"),
    Case("h5-empty", _data(lambda p: p.write_bytes(b"")), DataError, "ds1.h5"),
    Case("h5-no-counts", _data(_h5(time_ms=TIME)), DataError, "counts"),
    Case(
        "h5-counts-group",
        _data(lambda p: h5py.File(p, "w").create_group("counts").file.close()),
        DataError,
        "counts",
    ),
    Case("counts-negative", _data(_h5(**_good(counts=-COUNTS - 1))), DataError, "negative"),
    Case(
        "counts-nan",
        _data(_h5(**_good(counts=np.where(COUNTS > 2, np.nan, COUNTS)))),
        DataError,
        "NaN",
    ),
    Case(
        "counts-inf",
        _data(_h5(**_good(counts=np.where(COUNTS > 2, np.inf, COUNTS)))),
        DataError,
        "ds1",
    ),
    Case("counts-2d", _data(_h5(**_good(counts=COUNTS[:, :, 0]))), DataError, "counts"),
    Case("counts-4d", _data(_h5(**_good(counts=COUNTS[..., None]))), DataError, "counts"),
    Case(
        "counts-strings",
        _data(_h5(**_good(counts=np.array(["a", "b"], dtype="S1")))),
        DataError,
        "counts",
    ),
    Case(
        "counts-zero-trials",
        _data(_h5(**_good(counts=COUNTS[:0], condition_id=COND[:0]))),
        DataError,
        "ds1",
    ),
    Case("time-length", _data(_h5(**_good(time_ms=TIME[:50]))), DataError, "time"),
    Case(
        "time-nan", _data(_h5(**_good(time_ms=np.where(TIME > 5, np.nan, TIME)))), DataError, "time"
    ),
    Case("condition-length", _data(_h5(**_good(condition_id=COND[:5]))), DataError, "condition"),
    Case(
        "unknown-suffix", _data(lambda p: p.write_text("1 2 3"), "ds1.txt"), ConfigError, "ds1.txt"
    ),
    Case(
        "mat-garbage",
        _data(lambda p: p.write_bytes(b"MATLAB 5.0 garbage" * 10), "ds1.mat"),
        LfadsRunsError,
        "ds1.mat",
    ),
    Case("loader-ragged", _ragged_loader, DataError, "ragged_loader"),
    Case("loader-raises", _raising_loader, DataError, "trial_table"),
    Case(
        "loader-missing-module",
        cfg("{name: ds1, file: ds1.h5}", "{name: ds1, loader: 'nope_mod:load'}", load_and_prepare),
        ConfigError,
        "nope_mod",
    ),
    Case("bin-not-multiple", param("spikeBinMs: 2.5", load_and_prepare), DataError, "spike"),
]


def test_base_tree_prepares(tmp_path, datasets):
    """The control: the unbroken tree loads and prepares (so each case fails for its own fault)."""
    tree(tmp_path, datasets)
    runs = RunCollection.from_yaml(tmp_path / "config.yaml").prepare()
    assert [r.is_prepared for r in runs] == [True]


@pytest.mark.parametrize("case", CONFIG_CASES + DATA_CASES, ids=lambda c: c.id)
def test_bad_input_is_one_clear_error_and_changes_nothing(case: Case, tmp_path, datasets):
    tree(tmp_path, datasets)
    action = case.setup(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(case.error) as e:
        action()
    assert isinstance(e.value, LfadsRunsError), f"{type(e.value).__name__}: {e.value}"
    assert case.culprit in str(e.value), str(e.value)
    assert snapshot(tmp_path) == before


def test_case_count():
    """The issue asks for at least 80 table cases across configs, data, trained files and CLI."""
    assert len(CONFIG_CASES) + len(DATA_CASES) + len(TRAINED_CASES) + len(CLI_CASES) >= 80


# ----------------------------------------------------------------------- trained files
@pytest.fixture(scope="module")
def trained(tmp_path_factory, datasets) -> Path:
    """A tree with one trained run (3 checkpoints kept), its model_params and posterior."""
    pytest.importorskip("torch")
    return train_one_run(tmp_path_factory.mktemp("trained"), datasets)


def _corrupt(p: Path, at: float = 0.0) -> None:
    """Flip 64 bytes at fraction ``at`` of the file (0: the HDF5 superblock and root header)."""
    raw = bytearray(p.read_bytes())
    start = int(len(raw) * at)
    for i in range(start, min(len(raw), start + 64)):
        raw[i] ^= 0xA5
    p.write_bytes(bytes(raw))


def _truncate(p: Path, keep: float = 0.5) -> None:
    p.write_bytes(p.read_bytes()[: int(p.stat().st_size * keep)])


def _posterior(split: str):
    def get(run) -> Path:
        return run.posterior_files(run.params.posterior_mean_kind)["ds1"][split]

    return get


def _rewrite_posterior(split: str, change: Callable[[dict], dict]):
    def mutate(p: Path) -> None:
        from lfads_runs.io.posterior_files import read_posterior_file, write_posterior_file

        write_posterior_file(p, change(read_posterior_file(p)))

    return _posterior(split), mutate


def _trained(file: Callable[[Any], Path], mutate: Callable[[Path], None], act: str):
    def setup(tmp: Path):
        run = the_run(tmp)
        target = file(run)
        target = target.resolve()  # inputs are links into data_<D>/
        mutate(target)
        run = the_run(tmp)
        actions = {
            "params": lambda: run.load_model_trained_params(dump="never"),
            "posterior": run.load_posterior_means,
            "info": run.load_input_info,
            "fitlog": run.load_fit_log,
            "dump": lambda: run.load_model_trained_params(dump="force", checkpoint="latest"),
        }
        return actions[act]

    return setup


MP = lambda r: r.file_model_params  # noqa: E731
INFO = lambda r: r.input_info_files["ds1"]  # noqa: E731
INPUT = lambda r: r.input_files["ds1"]  # noqa: E731
FITLOG = lambda r: r.file_fitlog  # noqa: E731


def _scale(key: str, factor: float, rows: slice = slice(None)):
    def change(d: dict) -> dict:
        d = dict(d)
        a = np.array(d[key], dtype=np.float64)
        a[rows] = a[rows] * factor
        d[key] = a
        return d

    return change


def _all_checkpoints_corrupt(tmp: Path):
    run = the_run(tmp)
    for p in run.path_lfads_output.glob("*.ckpt-*.data-*"):
        _corrupt(p, 0.5)
    return lambda: run.load_model_trained_params(dump="force", checkpoint="latest")


def _params_json_garbage(tmp: Path):
    run = the_run(tmp)
    (run.paths.param_folder / "params.json").write_text("{not json")
    return lambda: the_run(tmp).prepare()


def _params_json_collision(tmp: Path):
    import json

    run = the_run(tmp)
    pj = run.paths.param_folder / "params.json"
    rec = json.loads(pj.read_text())
    rec["differences"] = {"c_gen_dim": 999}
    pj.write_text(json.dumps(rec))
    return lambda: the_run(tmp).prepare()


def _infer(counts: Any):
    def setup(tmp: Path):
        run = the_run(tmp)
        return lambda: run.infer(counts, dataset="ds1")

    return setup


TRAINED_CASES = [
    Case("infer-ragged", _infer([[[1, 2]], [[1]]]), DataError, "counts of ds1"),
    Case("infer-nan", _infer(np.full((2, 30, 6), np.nan)), DataError, "NaN"),
    Case("infer-wrong-neurons", _infer(np.ones((2, 30, 4))), DataError, "neurons"),
    Case(
        "model-params-truncated",
        _trained(MP, _truncate, "params"),
        ModelParamsError,
        "model_params",
    ),
    Case(
        "model-params-garbage", _trained(MP, _corrupt, "params"), ModelParamsError, "model_params"
    ),
    Case(
        "model-params-text",
        _trained(MP, lambda p: p.write_text("x"), "params"),
        ModelParamsError,
        "model_params",
    ),
    Case(
        "model-params-empty",
        _trained(MP, lambda p: p.write_bytes(b""), "params"),
        ModelParamsError,
        "model_params",
    ),
    Case(
        "model-params-missing",
        _trained(MP, Path.unlink, "params"),
        MissingOutputError,
        "model_params",
    ),
    Case(
        "posterior-more-trials",
        _trained(
            *_rewrite_posterior(
                "train",
                lambda d: {
                    k: np.concatenate([v, v]) if k != "train_steps" else v for k, v in d.items()
                },
            ),
            "posterior",
        ),
        DataError,
        "_train_",
    ),
    Case(
        "posterior-nan-rates",
        _trained(
            *_rewrite_posterior("train", _scale("output_dist_params", np.nan, slice(0, 1))),
            "posterior",
        ),
        DataError,
        "_train_",
    ),
    Case(
        "posterior-inf-rates",
        _trained(
            *_rewrite_posterior("valid", _scale("output_dist_params", np.inf, slice(1, 2))),
            "posterior",
        ),
        DataError,
        "_valid_",
    ),
    Case(
        "posterior-negative-rates",
        _trained(*_rewrite_posterior("train", _scale("output_dist_params", -1.0)), "posterior"),
        DataError,
        "negative",
    ),
    Case(
        "posterior-fewer-bins",
        _trained(
            *_rewrite_posterior(
                "train", lambda d: {k: v[:, :-2] if np.ndim(v) == 3 else v for k, v in d.items()}
            ),
            "posterior",
        ),
        DataError,
        "_train_",
    ),
    Case(
        "posterior-other-neurons",
        _trained(
            *_rewrite_posterior(
                "valid",
                lambda d: {
                    k: v[..., :-1] if k == "output_dist_params" else v for k, v in d.items()
                },
            ),
            "posterior",
        ),
        DataError,
        "_valid_",
    ),
    Case(
        "posterior-garbage",
        _trained(_posterior("train"), _corrupt, "posterior"),
        DataError,
        "_train_",
    ),
    Case(
        "posterior-truncated",
        _trained(_posterior("valid"), _truncate, "posterior"),
        DataError,
        "_valid_",
    ),
    Case(
        "posterior-missing",
        _trained(_posterior("train"), Path.unlink, "posterior"),
        MissingOutputError,
        "_train_",
    ),
    # MAT v7.3: the HDF5 superblock follows MATLAB's 512-byte text header
    Case(
        "input-info-garbage",
        _trained(INFO, lambda p: _corrupt(p, 512 / p.stat().st_size), "info"),
        DataError,
        "inputInfo_ds1",
    ),
    Case(
        "input-info-text",
        _trained(INFO, lambda p: p.write_text("x"), "info"),
        DataError,
        "inputInfo_ds1",
    ),
    Case("input-file-garbage", _trained(INPUT, _truncate, "posterior"), DataError, "lfads_ds1.h5"),
    Case(
        "fitlog-garbage",
        _trained(FITLOG, lambda p: p.write_bytes(b"\x00\xff garbage\n1,2\n"), "fitlog"),
        DataError,
        "fitlog",
    ),
    Case("all-checkpoints-corrupt", _all_checkpoints_corrupt, CheckpointError, "ckpt"),
    Case("params-json-garbage", _params_json_garbage, ConfigError, "params.json"),
    Case("params-json-collision", _params_json_collision, ConfigError, "hash collision"),
]


@pytest.mark.parametrize("case", TRAINED_CASES, ids=lambda c: c.id)
def test_bad_trained_file_is_one_clear_error_and_changes_nothing(case: Case, tmp_path, trained):
    shutil.copytree(trained, tmp_path, symlinks=True, dirs_exist_ok=True)
    action = case.setup(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(case.error) as e:
        action()
    assert isinstance(e.value, LfadsRunsError), f"{type(e.value).__name__}: {e.value}"
    assert case.culprit in str(e.value), str(e.value)
    assert snapshot(tmp_path) == before


# ----------------------------------------------------------------------- CLI usage
def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "LFADS_RUNS_DEBUG": ""}
    return subprocess.run(
        [sys.executable, "-m", "lfads_runs", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def _cli_cfg(old: str, new: str, *args: str):
    def setup(tmp: Path) -> tuple[str, ...]:
        (tmp / "config.yaml").write_text(BASE.replace(old, new))
        return args

    return setup


CLI_CASES = [
    Case("cli-missing-config", lambda t: ("list", "nope.yaml"), LfadsRunsError, "nope.yaml"),
    Case(
        "cli-config-is-dir",
        lambda t: (t.joinpath("d.yaml").mkdir(), ("list", "d.yaml"))[1],
        LfadsRunsError,
        "d.yaml",
    ),
    Case(
        "cli-bad-param-index",
        lambda t: ("status", "config.yaml", "--param", "7"),
        LfadsRunsError,
        "7",
    ),
    Case(
        "cli-unknown-run-spec",
        lambda t: ("status", "config.yaml", "--run-spec", "nosuch"),
        LfadsRunsError,
        "nosuch",
    ),
    Case(
        "cli-bad-kind",
        lambda t: ("posterior", "config.yaml", "--kind", "bogus"),
        LfadsRunsError,
        "bogus",
    ),
    Case("cli-dump-untrained", lambda t: ("dump", "config.yaml"), LfadsRunsError, "model_params"),
    Case(
        "cli-prepare-inf",
        _cli_cfg(P, "c_batch_size: 5, c_learning_rate_init: .inf}", "prepare", "config.yaml"),
        LfadsRunsError,
        "c_learning_rate_init",
    ),
    Case(
        "cli-prepare-dataset-dir",
        lambda t: (
            (t / "data" / "ds2.h5").unlink(),
            (t / "data" / "ds2.h5").mkdir(),
            ("prepare", "config.yaml"),
        )[2],
        LfadsRunsError,
        "ds2.h5",
    ),
    Case(
        "cli-prepare-truncated-npz",
        lambda t: (
            _truncated_npz(t / "data" / "x.npz"),
            (t / "config.yaml").write_text(BASE.replace("file: ds2.h5", "file: x.npz")),
            ("prepare", "config.yaml"),
        )[2],
        LfadsRunsError,
        "x.npz",
    ),
    Case(
        "cli-train-bad-option",
        lambda t: ("train", "config.yaml", "--max-parallel", "0"),
        LfadsRunsError,
        "max-parallel",
    ),
    Case(
        "cli-name-too-long",
        _cli_cfg("name: bad", f"name: {LONG}", "list", "config.yaml"),
        LfadsRunsError,
        "255",
    ),
    Case(
        "cli-yaml-error",
        _cli_cfg("params:", "params: [", "list", "config.yaml"),
        LfadsRunsError,
        "line",
    ),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=lambda c: c.id)
def test_cli_bad_usage_is_one_error_line(case: Case, tmp_path, datasets):
    tree(tmp_path, datasets)
    args = case.setup(tmp_path)
    before = snapshot(tmp_path)
    proc = cli(*args, cwd=tmp_path)
    assert proc.returncode in (1, 2), (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith(("error:", "Error:"))]
    assert len(errors) == 1, proc.stderr
    assert case.culprit in proc.stderr, proc.stderr
    assert snapshot(tmp_path) == before
