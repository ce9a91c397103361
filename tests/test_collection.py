"""RunCollection, find_runs semantics (MATLAB findRuns), layout paths, discovery."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from _lorenz_params import LORENZ

from lfads_runs import (
    ConfigError,
    Dataset,
    RunCollection,
    RunNotFoundError,
    RunParams,
    RunSpec,
)
from lfads_runs.collection import Run


def make(tmp_path: Path, version: int = 20171107) -> RunCollection:
    ds = [Dataset.from_file(tmp_path / f"dataset00{i}.h5") for i in (1, 2, 3)]
    specs = [RunSpec("all", [d.name for d in ds])] + [RunSpec(d.single_run_name, [d]) for d in ds]
    params = [RunParams(**LORENZ, use_alignment_matrix=True), RunParams(**LORENZ)]
    return RunCollection(tmp_path / "runs", "exampleStitching", ds, specs, params, version=version)


def test_runs_matrix_and_linear_order(tmp_path):
    rc = make(tmp_path)
    assert len(rc.runs) == 4 and len(rc.runs[0]) == 2
    assert [(r.name, r.param_index) for r in rc.all_runs[:5]] == [
        ("all", 1),
        ("single_dataset001", 1),
        ("single_dataset002", 1),
        ("single_dataset003", 1),
        ("all", 2),
    ]
    assert [r.linear_index for r in rc.all_runs] == list(range(1, 9))


def test_find_runs_matlab_semantics(tmp_path):
    rc = make(tmp_path)
    run = rc.find_runs("all", 1)
    assert isinstance(run, Run)
    assert run.param_hash == "param_Qr2PeG" and run.data_hash == "data_RE1kuL"
    assert rc.find_runs("all", "param_Qr2PeG") is run
    assert rc.find_runs("all", "Qr2PeG") is run
    assert rc.find_runs(1, RunParams(**LORENZ, use_alignment_matrix=True)) is run
    assert rc.find_runs(rc.run_specs[0], 1) is run
    both = rc.find_runs("all", None)
    assert [r.param_index for r in both] == [1, 2]
    every = rc.find_runs()
    assert every == rc.all_runs
    sel = rc.find_runs(["single_dataset002", "all"], [2])
    assert [(r.name, r.param_index) for r in sel] == [("single_dataset002", 2), ("all", 2)]
    masked = rc.find_runs([True, False, False, True], [False, True])
    assert [(r.name, r.param_index) for r in masked] == [("all", 2), ("single_dataset003", 2)]
    assert rc.find_runs(["all"], 1) == [run]


@pytest.mark.parametrize(
    "spec, param, match",
    [
        ("nope", 1, "no run spec matches 'nope'.*1: all"),
        ("all", 3, "no parameter set matches 3.*1: param_Qr2PeG, 2: param_YOs74u"),
        ("all", "param_zzzzzz", "param_zzzzzz"),
        (0, 1, "no run spec matches 0"),
        ("all", RunParams(c_factors_dim=3), "no parameter set"),
    ],
)
def test_find_runs_misses(tmp_path, spec, param, match):
    rc = make(tmp_path)
    with pytest.raises(RunNotFoundError, match=match) as info:
        rc.find_runs(spec, param)
    assert isinstance(info.value, KeyError)


def test_current_layout_paths(tmp_path):
    rc = make(tmp_path)
    run = rc.find_runs("all", 1)
    base = tmp_path / "runs" / "exampleStitching"
    assert run.path == base / "param_Qr2PeG" / "all"
    assert run.path_common_data == base / "data_RE1kuL" / "all"
    assert run.path_lfads_input == run.path / "lfadsInput"
    assert run.path_lfads_output == run.path / "lfadsOutput"
    assert run.file_model_params == run.path / "lfadsOutput" / "model_params"
    assert run.file_fitlog == run.path / "lfadsOutput" / "fitlog.csv"
    assert run.input_files["dataset002"] == run.path / "lfadsInput" / "lfads_dataset002.h5"
    assert run.input_info_files["dataset001"].name == "inputInfo_dataset001.mat"
    assert (
        run.paths.link_target("lfads_dataset001.h5")
        == "../../../data_RE1kuL/all/lfads_dataset001.h5"
    )
    post = run.posterior_files()
    assert (
        post["dataset001"]["train"].name
        == "model_runs_dataset001.h5_train_posterior_sample_and_average"
    )
    assert (
        run.posterior_files("posterior_push_mean")["dataset003"]["valid"].name
        == "model_runs_dataset003.h5_valid_posterior_push_mean"
    )
    assert run.file_train_script == run.path / "lfads_train.sh"
    assert run.file_posterior_script.name == "lfads_posterior_mean_sample.sh"
    assert run.file_write_params_script.name == "lfads_write_model_params.sh"
    assert run.file_log == run.path / "lfads.out" and run.file_done == run.path / "lfads.done"
    # the link resolves to the shared file
    target = (run.path_lfads_input / run.paths.link_target("lfads_dataset001.h5")).resolve()
    assert target == (run.path_common_data / "lfads_dataset001.h5").resolve()


def test_legacy_layout_paths(tmp_path):
    rc = make(tmp_path, version=201801)  # six digits: numerically older (the MATLAB demo)
    run = rc.find_runs("single_dataset001", 2)
    base = tmp_path / "runs" / "exampleStitching"
    assert run.path == base / "param_YOs74u" / "single_dataset001"
    assert run.path_common_data == base / "data_4MaTKO"
    assert (
        run.paths.link_target("lfads_dataset001.h5") == "../../../data_4MaTKO/lfads_dataset001.h5"
    )
    target = (run.path_lfads_input / run.paths.link_target("x")).resolve()
    assert target == (base / "data_4MaTKO" / "x").resolve()
    with pytest.raises(ConfigError, match="not supported"):
        make(tmp_path, version=2)


def test_duplicates_and_add_semantics(tmp_path):
    rc = make(tmp_path)
    with pytest.raises(ConfigError, match="identical"):
        RunCollection(
            tmp_path,
            "x",
            rc.datasets,
            rc.run_specs,
            [RunParams(c_co_dim=0), RunParams(c_co_dim=0, name="again")],
        )
    rc.add_params(RunParams(**LORENZ, name="renamed"))  # same hash: replaces (MATLAB addParams)
    assert len(rc.params) == 2 and rc.params[1].name == "renamed"
    rc.add_params({"c_factors_dim": 4})
    assert len(rc.params) == 3 and len(rc.runs[0]) == 3
    with pytest.raises(ConfigError, match="unknown dataset"):
        rc.add_run_spec(RunSpec("bad", ["dataset009"]))


def test_param_folder_json_and_collision(tmp_path):
    rc = make(tmp_path)
    p = rc.params[0]
    folder = rc.require_param_folder(p)
    record = json.loads((folder / "params.json").read_text())
    assert record["param_hash"] == "param_Qr2PeG" and record["data_hash"] == "data_RE1kuL"
    assert record["differences"]["useAlignmentMatrix"] is True
    assert record["params"]["c_factors_dim"] == 8
    assert rc.require_param_folder(p) == folder  # same parameters: fine
    record["differences"]["c_factors_dim"] = 9
    (folder / "params.json").write_text(json.dumps(record))
    with pytest.raises(ConfigError, match="hash collision"):
        rc.require_param_folder(p)


def test_summary_text_is_verbatim(tmp_path):
    rc = make(tmp_path)
    rc.comment = "100% sure \\n not a format"
    path = rc.write_summary()
    text = path.read_text()
    assert "100% sure \\n not a format" in text
    assert "[1 param_Qr2PeG data_RE1kuL]" in text and "single_dataset003" in text


def test_inventory_discovers_files(tmp_path):
    rc = make(tmp_path)
    run = rc.find_runs("all", 1)
    out = run.path_lfads_output
    out.mkdir(parents=True)
    (out / "model_params").write_bytes(b"")
    (out / "lfads_vae.ckpt-10.index").write_bytes(b"")
    (out / "lfads_vae_lve.ckpt-20.index").write_bytes(b"")
    for ds in run.dataset_names:
        for split in ("train", "valid"):
            run.paths.posterior_file(ds, split, "posterior_push_mean").write_bytes(b"")
    run.file_done.write_bytes(b"")
    stray = rc.path / "param_AAAAAA" / "all"
    stray.mkdir(parents=True)
    status = rc.inventory()
    first = status.runs[0]
    assert (first.run_spec, first.param_index) == ("all", 1)
    assert first.folder and first.model_params and first.done
    assert first.checkpoints == 1 and first.lve_checkpoints == 1
    assert first.posterior == {"posterior_sample_and_average": False, "posterior_push_mean": True}
    assert not first.inputs
    assert not status.runs[1].folder
    assert [u.param_hash for u in status.unknown_param_folders] == ["param_AAAAAA"]
    assert status.unknown_param_folders[0].run_specs == ["all"]
    with pytest.warns(DeprecationWarning, match=r"inventory\(\)"):
        assert rc.status() == status  # the old name still answers, with a warning


def test_links_as_symlinks_resolve(tmp_path):
    rc = make(tmp_path)
    run = rc.find_runs("all", 1)
    run.path_common_data.mkdir(parents=True)
    (run.path_common_data / "lfads_dataset001.h5").write_bytes(b"x")
    run.path_lfads_input.mkdir(parents=True)
    os.symlink(run.paths.link_target("lfads_dataset001.h5"), run.input_files["dataset001"])
    assert run.input_files["dataset001"].read_bytes() == b"x"
