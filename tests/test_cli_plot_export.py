"""``lfads-runs plot factors|pca|rates|fitlog|alignment`` and ``lfads-runs export``.

The run is real: the stitch2 data written as dataset files, prepared by
``run.prepare()`` (which reproduces the fixture's input files), with TensorFlow
LFADS's outputs copied into its ``lfadsOutput``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import manifest, n_trials, true_rates

pytest.importorskip("matplotlib")

from lfads_runs import RunCollection  # noqa: E402
from lfads_runs.cli import main  # noqa: E402
from lfads_runs.io.lfads_input import read_lfads_input  # noqa: E402

CASE = "stitch2"
DATASETS = ("dataset001", "dataset002")
PNG = b"\x89PNG\r\n\x1a\n"

CONFIG = """\
name: stitch2
root: ./runs
datasets:
  path: ./data
  items:
    - {name: dataset001, file: dataset001.h5}
    - {name: dataset002, file: dataset002.h5}
run_specs:
  - {name: all, datasets: all}
  - {name: single_dataset001, datasets: [dataset001]}
params:
  - {spikeBinMs: 10, useAlignmentMatrix: true, c_factors_dim: 6, c_ic_enc_dim: 16, c_ic_dim: 16,
     c_gen_dim: 16, c_co_dim: 0, c_batch_size: 16, trainToTestRatio: RATIO}
"""


def _write_datasets(case: Path, folder: Path) -> None:
    """The fixture's original trials (reassembled from its input files) as dataset files."""
    folder.mkdir()
    with h5py.File(case / "truth.h5") as truth:
        for name in DATASETS:
            inp = read_lfads_input(case / "lfadsInput" / f"lfads_{name}.h5")
            n = inp.train_data.shape[0] + inp.valid_data.shape[0]
            counts = np.empty((n, *inp.train_data.shape[1:]), np.int64)
            counts[inp.train_inds.astype(int) - 1] = inp.train_data
            counts[inp.valid_inds.astype(int) - 1] = inp.valid_data
            with h5py.File(folder / f"{name}.h5", "w") as f:
                f["counts"] = counts
                f["true_rates"] = true_rates(case, name)
                f["condition_id"] = truth[name]["condition_id"][()]
                f["bin_ms"] = 10.0


@pytest.fixture
def trained(tmp_path, tf_fixtures):
    """(config path, run): prepared here, trained by TensorFlow (the fixture's outputs)."""
    case = tf_fixtures / CASE
    _write_datasets(case, tmp_path / "data")
    config = tmp_path / "stitch2.yaml"
    ratio = manifest(CASE)["synthetic_data"]["train_to_test_ratio"]
    config.write_text(CONFIG.replace("RATIO", str(ratio)))
    rc = RunCollection.from_yaml(config)
    run = rc.find_runs("all", 1)
    run.prepare()
    # prepare reproduced TensorFlow's inputs: same split, data and alignment matrices
    for name in DATASETS:
        ours = read_lfads_input(run.input_files[name])
        ref = read_lfads_input(case / "lfadsInput" / f"lfads_{name}.h5")
        np.testing.assert_array_equal(ours.train_data, ref.train_data)
        np.testing.assert_allclose(ours.alignment_matrix_cxf, ref.alignment_matrix_cxf, atol=1e-9)
    shutil.copytree(case / "lfadsOutput", run.path_lfads_output)
    return config, run


def _cli(capsys, *args) -> tuple[int, object]:
    code = main([str(a) for a in args])
    out = capsys.readouterr().out
    return code, json.loads(out) if code == 0 else out


@pytest.mark.parametrize(
    ("command", "names"),
    [
        ("factors", ["factors_dataset001.png", "factors_dataset002.png"]),
        ("pca", ["stitching_pca.png"]),
        ("rates", ["rates_vs_truth_dataset001.png", "rates_vs_truth_dataset002.png"]),
        ("fitlog", ["training_curves.png"]),
        ("alignment", ["alignment_reconstruction.png"]),
        ("params", ["generator_W.png", "readout_matrices.png"]),
    ],
)
def test_plot_commands_write_pngs_and_print_their_paths(trained, capsys, tmp_path, command, names):
    config, _ = trained
    out = tmp_path / "figs"
    code, paths = _cli(capsys, "plot", command, config, "all", "1", "-o", out)
    assert code == 0
    assert [Path(p).name for p in paths] == names
    for p in paths:
        data = Path(p).read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000, p


def test_plot_options_and_errors(trained, capsys, tmp_path):
    config, run = trained
    code, paths = _cli(
        capsys, "plot", "factors", config, "all", 1, "-o", tmp_path, "--dataset", "dataset002",
        "--kind", "posterior_sample_and_average",
    )  # fmt: skip
    assert code == 0 and [Path(p).name for p in paths] == ["factors_dataset002.png"]
    # a run without results: one clear error, exit status 1, nothing printed on stdout
    code = main(["plot", "factors", str(config), "single_dataset001", "1", "-o", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    assert "prepare the run first" in captured.err
    code = main(["plot", "alignment", str(config), "single_dataset001", "1", "-o", str(tmp_path)])
    assert code == 2 and "uses no alignment matrices" in capsys.readouterr().err
    code = main(["plot", "pca", str(config), "all", "-o", str(tmp_path)])
    assert code == 2


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_param_figures_have_one_owner_for_runs_and_weights(trained, tmp_path):
    """run_figures.save_param_figures is plots.params' function: it takes the run or its
    weights; save_run_figures draws it at the 110 dpi of the other run figures."""
    from lfads_runs import run_figures
    from lfads_runs.plots import params as plots_params

    _, run = trained
    assert run_figures.save_param_figures is plots_params.save_param_figures
    from_run = run_figures.save_param_figures(run, tmp_path / "run")
    from_weights = plots_params.save_param_figures(
        run.load_model_trained_params(), tmp_path / "weights"
    )
    assert [p.name for p in from_run] == [p.name for p in from_weights]
    assert _png_size(from_run[0]) == _png_size(from_weights[0]) == (624, 540)  # 5.2 x 4.5 in
    grouped = run_figures.save_run_figures(run, tmp_path / "all", which=("params", "factors"))
    assert [p.name for p in grouped["params"]] == ["generator_W.png", "readout_matrices.png"]
    assert _png_size(grouped["params"][0]) == (572, 495)  # 110 dpi
    assert [p.name for p in grouped["factors"]] == [
        "factors_dataset001.png",
        "factors_dataset002.png",
    ]
    with pytest.raises(AttributeError, match="no attribute 'save_nothing'"):
        run_figures.save_nothing  # noqa: B018


def test_plot_runs_headless_in_a_subprocess(trained, tmp_path):
    config, _ = trained
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "MPLBACKEND")}
    proc = subprocess.run(
        [sys.executable, "-m", "lfads_runs", "plot", "pca", str(config), "all", "1", "-o",
         str(tmp_path / "f")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (path,) = json.loads(proc.stdout)
    assert Path(path).read_bytes().startswith(PNG)


def test_export_writes_one_self_describing_hdf5_and_nwb(trained, capsys, tmp_path):
    pytest.importorskip("pynwb")
    config, run = trained
    target = tmp_path / "export" / "stitch2_all.h5"
    code, rows = _cli(capsys, "export", config, "all", 1, "-o", target, "--nwb")
    assert code == 0
    assert rows == [
        {
            "run_spec": "all",
            "param_index": 1,
            "param_hash": run.param_hash,
            "ok": True,
            "h5": str(target),
            "nwb": str(target.with_suffix(".nwb")),
        }
    ]
    pms = run.load_posterior_means()
    with h5py.File(target) as f:
        assert f.attrs["param_hash"] == run.param_hash
        assert f.attrs["run_spec"] == "all"
        assert f.attrs["c_factors_dim"] == 6
        assert json.loads(f.attrs["run_params_json"])["data_hash"] == run.data_hash
        for name in DATASETS:
            g = f["posterior_means"][name]
            np.testing.assert_array_equal(g["factors"][()], pms[name].factors)
            assert g["rates"].attrs["units"].startswith("expected spike counts per bin")
        assert f["model_params"]["gen_gengru_rh_to_c_W"].shape == (16, 16)
        assert set(f["model_params"]["factors_to_logrates_W"]) == set(DATASETS)
        assert f["fitlog"].attrs["n_epochs"] == manifest(CASE)["fitlog"]["rows"]
    from pynwb import NWBHDF5IO

    with NWBHDF5IO(str(target.with_suffix(".nwb")), "r") as io:
        table = io.read().processing["lfads"]["posterior_means_dataset002"]
        assert len(table) == n_trials(CASE, "dataset002")["all"]
        np.testing.assert_allclose(table["factors"][4], pms["dataset002"].factors[4])


def test_export_of_several_runs_names_files_by_run_and_param(trained, capsys, tmp_path):
    config, run = trained
    out = tmp_path / "exports"
    code = main(["export", str(config), "-o", str(out)])
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert code == 1  # single_dataset001 has no results: listed, not fatal for the others
    assert [r["ok"] for r in rows] == [True, False]
    assert rows[0]["h5"] == str(out / f"all_{run.param_hash}.h5")
    assert "single_dataset001" in captured.err
    assert sorted(p.name for p in out.iterdir()) == [f"all_{run.param_hash}.h5"]
    assert main(["export", str(config), "-o", str(tmp_path / "x.h5")]) == 2  # one file, two runs
