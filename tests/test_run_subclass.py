"""MATLAB parity of LFADS.Run / RunCollection: Run subclass hooks, run_class in YAML and in
workers, collection editing, RunSpec indices, dataset info, and the multisession drive script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from lfads_runs import Dataset, DatasetCollection, Run, RunCollection, RunParams, RunSpec
from lfads_runs.data.synthetic import lorenz, write_lorenz_datasets
from lfads_runs.exceptions import (
    ConfigError,
    DataError,
    LfadsRunsWarning,
    MissingOutputError,
    RunBusyError,
    RunNotFoundError,
)
from lfads_runs.io.lfads_input import read_lfads_input

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TINY = dict(c_factors_dim=3, c_co_dim=0, c_gen_dim=16, c_ic_enc_dim=16, c_ic_dim=8,
            c_batch_size=10, max_epochs=2, num_samples_posterior=4)  # fmt: skip


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = lorenz(n_datasets=2, n_conditions=4, trials_per_condition=20, n_neurons=[12, 10],
               duration_ms=100, seed=1)  # fmt: skip
    write_lorenz_datasets(d, tmp_path / "data")
    return tmp_path / "data"


def _dc(data_dir: Path) -> DatasetCollection:
    return DatasetCollection(data_dir, [Dataset.from_file(f"dataset00{i}.h5") for i in (1, 2)])


class ShiftRun(Run):
    """Hooks with visible effects: drops the last neuron, adds one extra array, aligns on other data."""

    calls: list[tuple[str, str]] = []

    def generate_counts_for_dataset(self, dataset, mode):
        ShiftRun.calls.append((dataset.name, mode))
        data = super().generate_counts_for_dataset(dataset, mode)
        counts = data.counts if mode == "export" else np.roll(data.counts, 7, axis=1)
        return {"counts": counts, "time_ms": data.time_ms, "condition_id": data.condition_id}

    def modify_sequence_data_post_loading(self, dataset, data):
        return {"counts": data.counts[:, :, :-1], "time_ms": data.time_ms,
                "condition_id": data.condition_id}  # fmt: skip

    def generate_extra_lfads_inputs_by_dataset(self, dataset, data):
        return {"n_trials_original": np.array([data.n_trials]), "batch": self.params.c_batch_size}


def test_run_subclass_hooks_shape_the_input_files(tmp_path, data_dir):
    ShiftRun.calls = []
    rc = RunCollection(tmp_path / "runs", "rc", _dc(data_dir), [RunSpec("all", [1, 2])],
                       [RunParams(use_alignment_matrix=True, **TINY)], run_class=ShiftRun)  # fmt: skip
    run = rc.find_runs("all", 1)
    assert isinstance(run, ShiftRun)
    run.prepare()
    assert ShiftRun.calls == [("dataset001", "export"), ("dataset002", "export")]
    inp = read_lfads_input(run.input_files["dataset001"])
    assert inp.train_data.shape[2] == 11  # the modify hook dropped a neuron
    seq = run.load_sequence_data([2])
    assert list(seq) == ["dataset002"] and seq["dataset002"].n_neurons == 9
    assert inp.extras["n_trials_original"].tolist() == [80]
    assert inp.extras["batch"].tolist() == [10]
    aligned_default = inp.alignment_matrix_cxf

    # alignment on other trials: asked for with mode "alignment", matrices differ
    class AlignRun(ShiftRun):
        uses_different_data_for_alignment = True

    ShiftRun.calls = []
    rc2 = RunCollection(tmp_path / "runs2", "rc", _dc(data_dir), [RunSpec("all", [1, 2])],
                        [RunParams(use_alignment_matrix=True, **TINY)], run_class=AlignRun)  # fmt: skip
    run2 = rc2.find_runs("all", 1)
    run2.prepare()
    assert ("dataset001", "alignment") in ShiftRun.calls
    inp2 = read_lfads_input(run2.input_files["dataset001"])
    np.testing.assert_array_equal(inp2.train_data, inp.train_data)
    assert not np.allclose(inp2.alignment_matrix_cxf, aligned_default)
    # MATLAB run.doMultisessionAlignment: the same matrices, through the same hooks
    tool = run2.do_multisession_alignment()
    np.testing.assert_allclose(tool.matrices["dataset001"], inp2.alignment_matrix_cxf)


@pytest.mark.parametrize(
    ("method", "value", "message"),
    [
        ("generate_counts_for_dataset", [1, 2], "returned list; expected DatasetData"),
        ("generate_counts_for_dataset", {"spikes": np.ones((3, 4, 5))}, "unknown fields"),
        ("generate_counts_for_dataset", {"counts": np.full((30, 5, 2), np.nan)}, "NaN"),
        ("generate_extra_lfads_inputs_by_dataset", {"train_data": np.ones(2)}, "collide"),
        ("generate_extra_lfads_inputs_by_dataset", {"a/b": np.ones(2)}, "not a valid HDF5"),
        ("generate_extra_lfads_inputs_by_dataset", {"s": np.array(["x"])}, "numeric"),
        ("generate_extra_lfads_inputs_by_dataset", [1], "expected a mapping"),
        ("generate_extra_lfads_inputs_by_dataset", {"r": [[1], [1, 2]]}, "not an array"),
        ("generate_counts_for_dataset", KeyError("spikes"), "failed: KeyError"),
        ("modify_sequence_data_post_loading", ZeroDivisionError("x"), "failed: ZeroDivision"),
    ],
)
def test_bad_hook_results_are_one_clear_error_and_write_nothing(
    tmp_path, data_dir, method, value, message
):
    def hook(self, *args):
        if isinstance(value, Exception):
            raise value
        return value

    cls = type("BadRun", (Run,), {method: hook})
    rc = RunCollection(tmp_path / "runs", "rc", _dc(data_dir), [RunSpec("s", [2])],
                       [RunParams(**TINY)], run_class=cls)  # fmt: skip
    run = rc.find_runs("s", 1)
    with pytest.raises(DataError, match=message) as exc:
        run.prepare()
    if "NaN" not in message:
        assert f"BadRun.{method}(" in str(exc.value)
    assert not list(run.path_common_data.glob("lfads_*.h5"))


def test_collection_editing_and_lookup(tmp_path, data_dir):
    dc = _dc(data_dir)
    rc = RunCollection(tmp_path / "runs", "rc", dc, [], [])
    rc.add_run_spec([RunSpec("all", np.arange(1, 3)), RunSpec("s2", np.int64(2))])
    assert rc.run_specs[0].datasets == ("dataset001", "dataset002")
    assert rc.run_specs[1].datasets == ("dataset002",)
    rc.add_params(RunParams.sweep(RunParams(**TINY), c_factors_dim=[3, 4, 5]))  # a list
    assert len(rc.params) == 3
    runs, rows, cols = rc.find_runs(np.array([2]), np.array([1, 3]), return_indices=True)
    assert (rows, cols) == ([2], [1, 3]) and [r.param_index for r in runs] == [1, 3]
    assert rc.find_runs(np.int64(1), np.int32(2)).params.c_factors_dim == 4
    assert len(rc.find_runs(np.array([True, False]))) == 3
    rc.filter_params([True, False, True])
    assert [p.c_factors_dim for p in rc.params] == [3, 5]
    rc.filter_run_specs(["s2"])
    assert [s.name for s in rc.run_specs] == ["s2"]
    assert rc.find_runs("s2", 2).param_index == 2  # columns renumbered
    # replacing the datasets and the run class: checked, and the runs follow
    with pytest.raises(ConfigError, match="run spec 's2' names unknown dataset 'dataset002'"):
        rc.datasets = dc.filter_datasets([1])
    rc.datasets = dc.filter_datasets([2])
    rc.run_class = ShiftRun
    assert isinstance(rc.find_runs("s2", 1), ShiftRun)
    with pytest.raises(ConfigError, match="subclass of lfads_runs.Run"):
        rc.run_class = RunParams
    rc.filter_params(np.array([], dtype=int))  # an empty selection keeps none
    assert rc.find_runs() == []
    rc.clear_all()
    assert rc.run_specs == () and rc.params == ()
    with pytest.raises(ConfigError, match="dataset index 3 is out of range"):
        rc.add_run_spec(RunSpec("bad", [3]))
    with pytest.raises(ConfigError, match="names unknown dataset 'nope'"):
        rc.add_run_spec(RunSpec("bad", ["nope"]))
    with pytest.raises(ConfigError, match="1-based indices"):
        RunSpec("bad", [1.5])
    with pytest.raises(RunNotFoundError, match="mask needs 0 entries"):
        rc.filter_params([True])


def test_setting_name_root_version_moves_every_path(tmp_path, data_dir):
    rc = RunCollection(tmp_path / "runs", "rc", _dc(data_dir), [RunSpec("all", [1, 2])],
                       [RunParams(**TINY)])  # fmt: skip
    before = rc.find_runs("all", 1).path_common_data
    rc.version = 201801  # MATLAB: rc.version = 201801 selects the legacy flat layout
    after = rc.find_runs("all", 1).path_common_data
    assert after != before and after.parent == rc.path
    rc.name = "other"
    rc.root = tmp_path / "elsewhere"
    assert rc.find_runs("all", 1).path.is_relative_to(tmp_path / "elsewhere" / "other")
    for bad in ("x", 0, 2.5, True):
        with pytest.raises(ConfigError, match="version must be a positive integer"):
            rc.version = bad
    with pytest.raises(ConfigError):
        rc.name = "a/b"
    assert rc.name == "other" and rc.version == 201801


def test_dataset_info_is_cached_until_the_file_changes(tmp_path, data_dir):
    dc = _dc(data_dir)
    table = dc.get_dataset_info_table()
    assert [(i.name, i.n_trials, i.n_channels) for i in table] == [
        ("dataset001", 80, 12),
        ("dataset002", 80, 10),
    ]
    assert "n_trials" in str(table).splitlines()[0]
    assert dc.compute_max_batch_size_for_train_to_ratio(4) == 15  # 16 valid trials
    assert dc.filter_having_minimum_trials_for_batch_size(15).names == dc.names
    assert dc.filter_having_minimum_trials_for_batch_size(16).names == ()
    assert dc.filter_datasets([False, True]).names == ("dataset002",)
    assert dc.filter_datasets(np.array([2, 1])).names == ("dataset002", "dataset001")
    # the cache follows the file: rewrite dataset002 with fewer trials
    d = lorenz(n_datasets=2, n_conditions=2, trials_per_condition=5, n_neurons=[3, 4],
               duration_ms=100, seed=2)  # fmt: skip
    os.remove(data_dir / "dataset002.h5")
    write_lorenz_datasets(d, tmp_path / "new")
    shutil.copy(tmp_path / "new" / "dataset002.h5", data_dir / "dataset002.h5")
    assert dc["dataset002"].load_info(data_dir).n_trials == 10
    with pytest.raises(ConfigError, match="no dataset 'x'"):
        dc.filter_datasets(["x"])


def _write_yaml(folder: Path, run_class: str) -> Path:
    cfg = folder / "config.yaml"
    cfg.write_text(textwrap.dedent(f"""\
        name: tiny
        root: ./runs
        run_class: "{run_class}"
        datasets:
          path: ./datasets
          items: [dataset001.mat, dataset002.mat]
        run_specs:
          - {{name: all, datasets: all}}
        params:
          - {{spikeBinMs: 5, c_factors_dim: 3, c_co_dim: 0, c_gen_dim: 16, c_ic_enc_dim: 16,
             c_ic_dim: 8, c_batch_size: 8, c_max_epochs: 2, num_samples_posterior: 4}}
        """))  # fmt: skip
    return cfg


@pytest.fixture
def lorenz_experiment(tmp_path: Path) -> Path:
    """A folder with the example's lorenz_experiment.py next to MATLAB-style .mat files."""
    shutil.copy(EXAMPLES / "lorenz_experiment.py", tmp_path / "lorenz_experiment.py")
    code = (
        "import lorenz_experiment as L; L.generate_demo_datasets('datasets', 2, n_conditions=4, "
        "trials_per_condition=12, n_neurons=(12, 10), duration_ms=100)"
    )
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True)
    return tmp_path


def test_default_dataset_info_reads_subject_and_date_of_mat_files(lorenz_experiment):
    dc = DatasetCollection(lorenz_experiment / "datasets", [Dataset.from_file("dataset002.mat")])
    (info,) = dc.load_info()
    assert (info.subject, info.date, info.n_trials, info.n_channels) == (
        "lorenz_example", "2018-01-31", 48, 10,
    )  # fmt: skip


def test_yaml_run_class_is_imported_in_the_worker(lorenz_experiment):
    """The worker (a fresh process) prepares the inputs itself through the YAML's run_class."""
    from lfads_runs.pipeline import RunTask

    cfg = _write_yaml(lorenz_experiment, "lorenz_experiment:LorenzRun")
    rc = RunCollection.from_yaml(cfg)
    run = rc.find_runs("all", 1)
    assert type(run).__name__ == "LorenzRun"
    task = RunTask.from_run(run, threads=1, seed=0)
    proc = subprocess.run(
        [sys.executable, "-m", "lfads_runs.pipeline", "--task-json", task.to_json()],
        capture_output=True, text=True, timeout=300, cwd="/",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert run.is_done and run.is_prepared
    with h5py.File(run.input_files["dataset002"], "r") as f:
        assert f["train_data"].shape[2] == 10
    pm = run.load_posterior_means()
    assert set(pm) == {"dataset001", "dataset002"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("lorenz_experiment", "expected 'package.module:Class'"),
        ("lorenz_experiment:Nope", "cannot import"),
        ("no_such_module:X", "cannot import"),
        ("lorenz_experiment:LorenzDataset", "not a subclass of lfads_runs.Run"),
    ],
)
def test_yaml_run_class_errors_name_the_key(lorenz_experiment, spec, message):
    cfg = _write_yaml(lorenz_experiment, spec)
    with pytest.raises(ConfigError, match=message) as exc:
        RunCollection.from_yaml(cfg)
    assert "run_class" in str(exc.value)


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["local", "slurm", "ray"])
def test_multisession_drive_script_end_to_end(tmp_path, executor):
    """MATLAB's drive_script_stitching.m, translated line by line, trains and loads results
    (slurm: submitit's local cluster, real job processes; ray: a local Ray cluster)."""
    if executor == "slurm":
        pytest.importorskip("submitit")
    if executor == "ray":
        pytest.importorskip("ray")
    pytest.importorskip("torch")
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "drive_script_multisession.py"), "--quick",
         "--threads", "1", "--root", str(tmp_path / "lz"), "--executor", executor],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    assert "dataset002  lorenz_example  2018-01-31  48        10" in out
    assert "4 done, 0 skipped, 0 failed" in out
    assert "dataset003: factors (48, 20, 3), rates (48, 20, 11)" in out
    assert "finite: True" in out
    assert "wrote alignment_reconstruction.png" in out
    rc_dir = tmp_path / "lz" / "runs" / "exampleStitching"
    assert len(list(rc_dir.glob("param_*/*/lfadsOutput/model_params"))) == 4
    assert len(list(rc_dir.glob("data_*/lfads_dataset001.h5"))) == 1  # legacy flat layout


# ---------------------------------------------------------------- results, export, cleanup
@pytest.fixture
def trained(tmp_path, data_dir) -> RunCollection:
    pytest.importorskip("torch")
    rc = RunCollection(tmp_path / "runs", "rc", _dc(data_dir),
                       [RunSpec("all", [1, 2]), RunSpec("s1", [1])],
                       [RunParams(**TINY, c_learning_rate_n_to_compare=100)])  # fmt: skip
    res = rc.train(runs=[rc.find_runs("all", 1)], executor="debug", seed=0, quiet=True)
    assert res.ok, res.summary()
    return rc


@pytest.mark.slow
def test_partial_posterior_means_and_collection_report(trained):
    rc = trained
    run = rc.find_runs("all", 1)
    for f in run.posterior_files()["dataset002"].values():
        f.unlink()
    with pytest.raises(MissingOutputError, match="dataset002"):
        run.load_posterior_means(reload=True)
    pms, valid = run.load_posterior_means(reload=True, with_valid=True)
    assert valid == {"dataset001": True, "dataset002": False} and list(pms) == ["dataset001"]
    assert list(run.load_posterior_means(datasets=np.array([1]))) == ["dataset001"]
    assert list(run.load_posterior_means(datasets=[True, False])) == ["dataset001"]
    with pytest.raises(ConfigError, match="has no dataset 3"):
        run.load_posterior_means(datasets=[3])
    # a corrupt file of one dataset is reported with the others, not raised
    run.posterior_files()["dataset001"]["train"].write_bytes(b"not hdf5")
    res = rc.load_posterior_means(reload=True)
    assert res.loaded == {}
    assert [(r.name, ds) for r, ds, _ in res.missing_datasets] == [
        ("all", "dataset001"), ("all", "dataset002"), ("s1", "dataset001"),
    ]  # fmt: skip
    assert [r.name for r, _ in res.missing] == ["all", "s1"]


@pytest.mark.slow
def test_posterior_means_back_onto_the_data_and_export(trained, tmp_path):
    rc = trained
    run = rc.find_runs("all", 1)
    merged = run.add_posterior_means_to_data("dataset002")
    raw = Dataset.from_file(rc.datasets.path / "dataset002.h5").read_data()
    np.testing.assert_array_equal(merged["counts"], raw.counts)
    pm = run.load_posterior_means()["dataset002"]
    assert merged["lfads_factors"] is pm.factors and merged["lfads_rates"].shape[0] == 80
    # trial 1 is a validation trial, trial 2 a training one: both in place
    assert np.isfinite(merged["lfads_factors"][[0, 1]]).all()
    with pytest.raises(ConfigError, match="has 2 datasets: name one"):
        run.add_posterior_means_to_data()

    # every index says its base; the 1-based twins are MATLAB's values
    from lfads_runs.results import concatenate_over_trials

    both = concatenate_over_trials(list(run.load_posterior_means().values()), drop_mismatched=True)
    assert set(both.dataset_index_by_trial) == {0, 1}
    np.testing.assert_array_equal(
        both.dataset_index_by_trial_1based, both.dataset_index_by_trial + 1
    )
    mtp = run.load_model_trained_params()
    assert mtp.dataset_idx_concatenated_1based.tolist() == [1] * 12 + [2] * 10
    log = run.load_fit_log()
    assert log.lve_index_1based is None or log.lve_index_1based == log.lve_index + 1

    files = run.export_results_to_h5()
    assert sorted(f.name for f in files) == [
        "modelTrainedParams.h5", "posteriorMeans_dataset001.h5", "posteriorMeans_dataset002.h5",
    ]  # fmt: skip
    assert all(f.parent == run.paths.export_dir for f in files)
    with h5py.File(run.paths.export_dir / "posteriorMeans_dataset001.h5", "r") as f:
        np.testing.assert_array_equal(
            f["posterior_means/dataset001/factors"][()],
            run.load_posterior_means()["dataset001"].factors,
        )
        assert f.attrs["param_hash"] == run.param_hash
    out = rc.export_results_to_h5(tmp_path / "exp")
    assert list(out) == [run]  # s1 has no results: skipped
    assert (tmp_path / "exp" / f"all_{run.param_hash}" / "posteriorMeans_dataset002.h5").is_file()
    run.posterior_files()["dataset002"]["valid"].unlink()
    run.load_posterior_means(reload=True, with_valid=True)
    with pytest.warns(LfadsRunsWarning, match="no posterior means for dataset002"):
        assert rc.export_results_to_h5(tmp_path / "exp2") == {}


@pytest.mark.slow
def test_delete_output_and_inputs_with_dry_run_and_claims(trained, monkeypatch):
    from lfads_runs.claims import acquire_claim

    rc = trained
    run, single = rc.find_runs("all", 1), rc.find_runs("s1", 1)
    single.prepare()
    would = run.delete_lfads_output(dry_run=True)
    assert run.paths.done_marker in would and run.path_lfads_output in would
    assert run.is_done  # dry run: nothing deleted
    handle = acquire_claim(run.paths)  # a live process (this one) holds the run
    try:
        with pytest.raises(RunBusyError, match="held by pid"):
            run.delete_lfads_output()
        with pytest.raises(RunBusyError):
            run.delete_lfads_output(dry_run=True)
        assert run.is_done and run.path_lfads_output.is_dir()
    finally:
        handle.release()
    # a deletion cut short (here: rmtree fails) leaves a run that no longer looks done
    import lfads_runs.actions.cleanup as cleanup

    def crash(path):
        raise OSError("disk gone")

    monkeypatch.setattr(cleanup.shutil, "rmtree", crash)
    with pytest.raises(OSError, match="disk gone"):
        run.delete_lfads_output()
    monkeypatch.undo()
    assert not run.is_done and run.state().state != "done"
    assert not run.paths.claim_file.exists()  # the claim was released
    assert run.delete_lfads_output() == would[1:]
    assert not run.is_done and not run.path_lfads_output.exists()
    assert run.is_prepared and run.state().state != "done"

    # inputs: the shared files of both runs; a claim on either blocks the other's deletion
    handle = acquire_claim(single.paths)
    try:
        with pytest.raises(RunBusyError):
            rc.delete_lfads_input_files()
    finally:
        handle.release()
    removed = rc.delete_lfads_input_files()
    assert run.paths.common_input_info_file("dataset002") in removed
    assert not run.is_prepared and not single.is_prepared
    assert not run.path_lfads_input.exists()
    run.prepare()  # prepared again from the data
    assert run.is_prepared


def test_yaml_run_specs_take_1_based_indices(tmp_path, data_dir):
    text = textwrap.dedent("""\
        name: idx
        datasets: {path: ./data, items: [dataset001.h5, dataset002.h5]}
        run_specs:
          - {name: all, datasets: [1, 2]}
          - {name: second, datasets: [2]}
        params: [{c_factors_dim: 3}]
        """)  # fmt: skip
    cfg = tmp_path / "idx.yaml"
    cfg.write_text(text)
    rc = RunCollection.from_yaml(cfg)
    assert [s.datasets for s in rc.run_specs] == [("dataset001", "dataset002"), ("dataset002",)]
    cfg.write_text(text.replace("[2]}", "[3]}"))
    with pytest.raises(
        ConfigError, match=r"run_specs\[1\]\.datasets\[0\].*index 3 is out of range 1\.\.2"
    ):
        RunCollection.from_yaml(cfg)
    cfg.write_text(text.replace("[2]}", "[dataset002, 2]}"))
    with pytest.raises(ConfigError, match="lists a dataset twice"):
        RunCollection.from_yaml(cfg)
