"""hyperparameters-<step>.txt: one reader (io.hyperparameters_file) and one value coercion."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from lfads_runs.dump import spec_from_output_dir
from lfads_runs.exceptions import ConfigError, DataError, MissingOutputError
from lfads_runs.hparams import Hyperparameters
from lfads_runs.io.hyperparameters_file import (
    hyperparameters_files,
    newest_hyperparameters_file,
    read_hyperparameters,
    read_hyperparameters_file,
)
from lfads_runs.params import RunParams


def test_reads_tensorflows_files(tf_fixtures):
    out = tf_fixtures / "stitch2" / "lfadsOutput"
    path = newest_hyperparameters_file(out)
    assert path == out / "hyperparameters-208.txt"
    raw = read_hyperparameters_file(path)
    assert raw["do_causal_controller"] in ("true", "false")  # TensorFlow's spelling
    hps = read_hyperparameters(path)
    assert hps.do_causal_controller is (raw["do_causal_controller"] == "true")
    assert hps.batch_size == int(raw["batch_size"])


def test_files_are_ordered_by_step_not_by_name(tmp_path):
    for name in ("hyperparameters-90.txt", "hyperparameters-100.txt", "hyperparameters-7.txt"):
        (tmp_path / name).write_text("{}")
    (tmp_path / "hyperparameters-x.txt").write_text("{}")
    (tmp_path / "hyperparameters-5000.txt").mkdir()  # a folder is not a file
    assert [p.name for p in hyperparameters_files(tmp_path)] == [
        "hyperparameters-7.txt",
        "hyperparameters-90.txt",
        "hyperparameters-100.txt",
    ]
    assert newest_hyperparameters_file(tmp_path / "missing") is None


@pytest.mark.parametrize(
    ("text", "error", "match"),
    [
        ("{not json", DataError, "JSON expected"),
        (b"\xff\xfe{}", DataError, "JSON expected"),
        ("[1, 2]", DataError, "expected a JSON object"),
        ('{"batch_size": "many"}', ConfigError, r"batch_size.*expected an integer"),
        ('{"do_causal_controller": "maybe"}', ConfigError, "expected true or false"),
    ],
)
def test_bad_file_is_one_error_naming_it(tmp_path, text, error, match):
    path = tmp_path / "hyperparameters-3.txt"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(error, match=match) as e:
        read_hyperparameters(path)
    assert str(path) in str(e.value)


def test_missing_file_and_damaged_file_in_a_run(tf_fixtures, tmp_path):
    with pytest.raises(MissingOutputError, match="no such hyperparameters file"):
        read_hyperparameters_file(tmp_path / "hyperparameters-0.txt")
    out = tmp_path / "lfadsOutput"
    shutil.copytree(tf_fixtures / "ctrl1" / "lfadsOutput", out)
    newest = newest_hyperparameters_file(out)
    newest.chmod(0o644)
    newest.write_text("[]")
    with pytest.raises(DataError, match=str(newest)):
        spec_from_output_dir(out)


def test_deprecated_reader_still_reads(tf_fixtures):
    path = tf_fixtures / "ctrl1" / "lfadsOutput" / "hyperparameters-0.txt"
    with pytest.warns(DeprecationWarning, match="read_hyperparameters"):
        assert Hyperparameters.from_json_file(path) == read_hyperparameters(path)


@pytest.mark.parametrize(
    ("word", "value"), [("yes", True), ("On", True), ("OFF", False), ("n", False), ("1", True)]
)
def test_both_classes_spell_booleans_alike(word, value):
    assert Hyperparameters(do_causal_controller=word).do_causal_controller is value
    assert RunParams(c_do_causal_controller=word).c_do_causal_controller is value
    # the MATLAB hash sees the coerced value, whatever the spelling
    assert RunParams(c_do_causal_controller=word).param_hash == (
        RunParams(c_do_causal_controller=value).param_hash
    )


def test_numbers_coerce_alike():
    assert Hyperparameters(batch_size="1_000").batch_size == 1000
    assert RunParams(c_batch_size="1_000").c_batch_size == 1000
    assert Hyperparameters(batch_size=np.int64(16)).batch_size == 16
    assert RunParams(c_batch_size=np.int64(16)).c_batch_size == 16
    for bad in (True, 1.5, "nan", "1.5"):
        with pytest.raises(ConfigError, match="expected an integer"):
            Hyperparameters(batch_size=bad)
        with pytest.raises(ConfigError, match="expected an integer"):
            RunParams(c_batch_size=bad)
    with pytest.raises(ConfigError, match="expected a finite number"):
        RunParams(c_learning_rate_init="inf")
    with pytest.raises(ConfigError, match="expected a number"):
        Hyperparameters(learning_rate_init=[0.1])


def test_written_file_reads_back(tmp_path):
    from lfads_runs.io.hyperparameters_file import RunFlags, write_hyperparameters_file
    from lfads_runs.model_spec import DatasetSpec, ModelSpec

    hps = Hyperparameters(batch_size=4, factors_dim=3, gen_dim=6, do_causal_controller=True)
    spec = ModelSpec.build(hps, [DatasetSpec("dataset001", 5)], 7)
    flags = RunFlags.make(data_dir=tmp_path / "in", lfads_save_dir=tmp_path)
    path = write_hyperparameters_file(tmp_path, 12, spec, flags, "train")
    assert path.name == "hyperparameters-12.txt"
    assert json.loads(path.read_text())["do_causal_controller"] == "true"
    back = read_hyperparameters(path)
    assert (back.batch_size, back.factors_dim, back.gen_dim) == (4, 3, 6)
    assert back.do_causal_controller is True
