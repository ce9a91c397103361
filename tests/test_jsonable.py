"""lfads_runs._jsonable: the one conversion of records to plain JSON values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from lfads_runs import RunParams
from lfads_runs._jsonable import jsonable
from lfads_runs.collection import params_record
from lfads_runs.runstate import read_state, write_state


class _Odd:
    def __str__(self) -> str:
        return "odd-object"


def test_nested_values_become_plain_json():
    value = {
        1: (np.int64(3), np.float32(0.5), np.bool_(True)),
        "arr": np.arange(4).reshape(2, 2),
        "set": {"b", "a", "c"},
        "path": Path("/tmp/x y"),
        "obj": _Odd(),
        "nested": {"t": (1, [2, (3,)]), "none": None},
    }
    out = jsonable(value)
    assert out == {
        "1": [3, 0.5, True],
        "arr": [[0, 1], [2, 3]],
        "set": ["a", "b", "c"],
        "path": "/tmp/x y",
        "obj": "odd-object",
        "nested": {"t": [1, [2, [3]]], "none": None},
    }
    assert type(out["1"][0]) is int and type(out["1"][2]) is bool
    json.dumps(out, allow_nan=False)  # strict JSON


def test_non_finite_numbers():
    value = {"a": float("nan"), "b": [np.float64("inf"), -math.inf], "c": 1.5}
    kept = jsonable(value)
    assert math.isnan(kept["a"]) and kept["b"] == [math.inf, -math.inf]
    assert jsonable(value, non_finite_as_none=True) == {"a": None, "b": [None, None], "c": 1.5}


def test_state_records_with_nan_inf_and_numpy_values_are_written(tmp_path):
    path = tmp_path / "state.json"
    write_state(
        path, {"state": "done", "lve": float("nan"), "cost": np.float64("inf"), "step": np.int64(7)}
    )
    assert read_state(path) == {"state": "done", "lve": None, "cost": None, "step": 7}


def test_params_record_is_the_parameters_as_json():
    params = RunParams(c_factors_dim=7, spike_bin_ms=4)
    record = params_record(params)
    assert record["params"] == json.loads(json.dumps(params.as_dict()))
    assert record["differences"] == json.loads(json.dumps(params.differences()))
    assert record["param_hash"] == params.param_hash
