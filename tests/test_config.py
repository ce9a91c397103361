"""YAML configurations: the documented shape, YAML pitfalls and every bad input."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lfads_runs import ConfigError, RunCollection, RunParams

EXAMPLE = """\
name: lorenz_example        # collection folder: <root>/<name>
root: ./runs                # relative to this file
version: 20171107           # optional layout version
datasets:
  path: ./data              # optional base folder of the dataset files
  items:
    - {name: dataset001, file: dataset001.h5}
    - {name: dataset002, file: dataset002.h5}
run_specs:
  - {name: all, datasets: [dataset001, dataset002]}
  - {name: single_dataset001, datasets: [dataset001]}
params:                     # each entry: only what differs from the defaults
  - {c_factors_dim: 8, c_co_dim: 0, useAlignmentMatrix: true}
sweep:                      # optional: appended after params, first grid key varies fastest
  base: {c_co_dim: 0}
  grid: {c_factors_dim: [2, 4, 6, 8]}
"""


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_issue_example(tmp_path):
    rc = RunCollection.from_yaml(write(tmp_path, EXAMPLE))
    assert rc.name == "lorenz_example"
    assert rc.path == (tmp_path / "runs" / "lorenz_example").resolve()
    assert rc.datasets.names == ("dataset001", "dataset002")
    assert rc.datasets["dataset001"].path == (tmp_path / "data" / "dataset001.h5").resolve()
    assert [s.name for s in rc.run_specs] == ["all", "single_dataset001"]
    assert [p.c_factors_dim for p in rc.params] == [8, 2, 4, 6, 8]
    assert rc.params[0].use_alignment_matrix and not rc.params[1].use_alignment_matrix
    assert rc.params[4].param_hash != rc.params[0].param_hash
    assert not (tmp_path / "runs").exists()  # loading never writes


def test_yaml_pitfalls_are_handled(tmp_path):
    cfg = EXAMPLE.replace(
        "  - {c_factors_dim: 8, c_co_dim: 0, useAlignmentMatrix: true}",
        "  - {c_factors_dim: 017, c_learning_rate_stop: 1e-3, useAlignmentMatrix: yes,"
        " c_l2_gen_scale: 1.0e3, c_device: on}",
    )
    rc = RunCollection.from_yaml(write(tmp_path, cfg))
    p = rc.params[0]
    assert p.c_factors_dim == 17  # not octal 15
    assert p.c_learning_rate_stop == 0.001  # not the string '1e-3'
    assert p.use_alignment_matrix is True
    assert p.c_l2_gen_scale == 1000.0
    assert p.c_device == "on"  # a string property keeps the word


def test_datasets_as_plain_list_and_all_keyword(tmp_path):
    rc = RunCollection.from_yaml(
        write(
            tmp_path,
            """\
        name: x
        datasets: [a.h5, {file: b.mat, name: bee, keys: {counts: spikes}}]
        run_specs: [{name: all, datasets: all}]
        params: [{}]
    """,
        )
    )
    assert rc.datasets.names == ("a", "bee")
    assert rc.datasets["bee"].options == {"keys": {"counts": "spikes"}}
    assert rc.run_specs[0].datasets == ("a", "bee")
    assert rc.params[0] == RunParams()


def test_sections_are_kept(tmp_path):
    rc = RunCollection.from_yaml(
        write(
            tmp_path,
            """\
        name: x
        datasets: [a.h5]
        run_specs: [{name: all, datasets: all}]
        params: [{}]
        train: {device: cpu, max_parallel: 2}
        dump_command: ["python", "run_lfads.py"]
    """,
        )
    )
    assert rc.options["train"] == {"device": "cpu", "max_parallel": 2}
    assert rc.options["dump_command"] == ["python", "run_lfads.py"]


BAD = [
    ("syntax", "name: [x\n", r"YAML syntax error"),
    ("top level list", "- a\n- b\n", r"top level must be a mapping"),
    ("unknown key", EXAMPLE + "param: []\n", r"unknown key 'param' \(did you mean 'params'\?\)"),
    (
        "unknown dataset key",
        EXAMPLE.replace("file: dataset001.h5", "fiel: dataset001.h5"),
        r"datasets.items\[0\].fiel \(line 7\): unknown key 'fiel' \(did you mean 'file'\?\)",
    ),
    (
        "wrong type",
        EXAMPLE.replace("version: 20171107", "version: soon"),
        r"version \(line 3\): expected an integer",
    ),
    (
        "non-positive dimension",
        EXAMPLE.replace("c_factors_dim: 8,", "c_factors_dim: 0,"),
        r"params\[0\].c_factors_dim \(line 13\): .*c_factors_dim must be >= 1",
    ),
    (
        "negative",
        EXAMPLE.replace("c_factors_dim: 8,", "c_gen_dim: -4,"),
        r"params\[0\].c_gen_dim.*0, 65535",
    ),
    (
        "unknown dataset",
        EXAMPLE.replace("[dataset001, dataset002]", "[dataset001, dataset003]"),
        r"run_specs\[0\].datasets\[1\] \(line 10\): unknown dataset 'dataset003'",
    ),
    (
        "duplicate dataset",
        EXAMPLE.replace("name: dataset002,", "name: dataset001,"),
        r"duplicate dataset 'dataset001'",
    ),
    (
        "duplicate run spec",
        EXAMPLE.replace("name: single_dataset001", "name: all"),
        r"duplicate run spec 'all'",
    ),
    (
        "duplicate params",
        EXAMPLE.replace(
            "{c_factors_dim: 8, c_co_dim: 0, useAlignmentMatrix: true}",
            "{c_factors_dim: 8, c_co_dim: 0}",
        ),
        r"duplicate parameter set param_8B1T6D",
    ),
    ("slash in name", EXAMPLE.replace("name: lorenz_example", "name: a/b"), r"must not contain"),
    ("dotdot in name", EXAMPLE.replace("name: all,", "name: ..,"), r"must not contain"),
    ("leading dot", EXAMPLE.replace("name: dataset002,", "name: .hidden,"), r"start with '\.'"),
    ("backslash", EXAMPLE.replace("name: all,", "name: 'a\\\\b',"), r"must not contain"),
    ("empty params", EXAMPLE.split("params:")[0] + "params: []\n", r"no parameter sets"),
    (
        "sweep unknown property",
        EXAMPLE.replace("grid: {c_factors_dim:", "grid: {c_factor_dim:"),
        r"sweep.grid.c_factor_dim \(line 16\): unknown RunParams property 'c_factor_dim' "
        r"\(did you mean 'c_factors_dim'\?\)",
    ),
    (
        "unknown param",
        EXAMPLE.replace("c_co_dim: 0, use", "c_co_dims: 0, use"),
        r"params\[0\].c_co_dims.*did you mean 'c_co_dim'",
    ),
    ("missing name", EXAMPLE.replace("name: lorenz_example", "nam: x"), r"unknown key 'nam'"),
    ("duplicate yaml key", EXAMPLE + "name: again\n", r"duplicate key 'name'"),
    ("bad section key", EXAMPLE + "train: {devise: cpu}\n", r"did you mean 'device'"),
    ("old layout", EXAMPLE.replace("version: 20171107", "version: 2"), r"not supported"),
]


@pytest.mark.parametrize("case, text, match", BAD, ids=[b[0] for b in BAD])
def test_bad_input_gives_one_config_error(tmp_path, case, text, match):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=match) as info:
        RunCollection.from_yaml(path)
    assert isinstance(info.value, ValueError)
    assert str(path) in str(info.value)
    assert list(tmp_path.iterdir()) == [path]  # nothing created


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        RunCollection.from_yaml(tmp_path / "nope.yaml")


def test_params_class(tmp_path, monkeypatch):
    mod = tmp_path / "myparams.py"
    mod.write_text(
        textwrap.dedent("""\
        import attrs
        from lfads_runs import RunParams, param_field

        @attrs.frozen(kw_only=True)
        class MyParams(RunParams):
            smoothing: float = param_field("smoothing", "double", 0.0)
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = EXAMPLE.replace("useAlignmentMatrix: true}", "useAlignmentMatrix: true, smoothing: 2}")
    rc = RunCollection.from_yaml(write(tmp_path, cfg + "params_class: 'myparams:MyParams'\n"))
    assert type(rc.params[0]).__name__ == "MyParams" and rc.params[0].smoothing == 2.0
    with pytest.raises(ConfigError, match="cannot import"):
        RunCollection.from_yaml(write(tmp_path, EXAMPLE + "params_class: 'nomod:X'\n"))


keys = st.sampled_from(
    [
        "c_factors_dim",
        "c_gen_dim",
        "c_co_dim",
        "spikeBinMs",
        "c_learning_rate_stop",
        "useAlignmentMatrix",
        "c_keep_prob",
    ]
)
values = {
    "c_factors_dim": st.integers(1, 300),
    "c_gen_dim": st.integers(1, 300),
    "c_co_dim": st.integers(0, 20),
    "spikeBinMs": st.sampled_from([1, 2, 5, 10, 20]),
    "c_learning_rate_stop": st.floats(1e-9, 1e-1),
    "useAlignmentMatrix": st.booleans(),
    "c_keep_prob": st.floats(0.01, 1.0),
}


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(keys, unique=True, min_size=1).flatmap(
        lambda ks: st.fixed_dictionaries({k: values[k] for k in ks})
    )
)
def test_yaml_round_trip_keeps_hashes(tmp_path, params):
    expected = RunParams.from_mapping(params)
    doc = {
        "name": "x",
        "datasets": ["a.h5"],
        "run_specs": [{"name": "all", "datasets": "all"}],
        "params": [params, dict(reversed(list(params.items())))],
    }
    path = tmp_path / "rt.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match="duplicate parameter set"):
        RunCollection.from_yaml(path)  # key order does not change the hash
    doc["params"] = [params]
    path.write_text(yaml.safe_dump(doc))
    got = RunCollection.from_yaml(path).params[0]
    assert got.param_hash == expected.param_hash
    assert got.data_hash == expected.data_hash


def test_yaml_merge_keys_can_be_overridden(tmp_path):
    rc = RunCollection.from_yaml(
        write(
            tmp_path,
            """\
        name: x
        datasets:
          - &base {file: a.h5, bin_ms: 1, keys: {counts: spikes}}
          - {<<: *base, file: b.h5, bin_ms: 2}
        run_specs: [{name: all, datasets: all}]
        params: [{}]
    """,
        )
    )
    assert rc.datasets["b"].options == {"bin_ms": 2, "keys": {"counts": "spikes"}}
    assert rc.datasets["a"].options["bin_ms"] == 1
