"""Held-out neurons named per dataset in the YAML reach the prepared input files."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from lfads_runs import ConfigError, DataError, RunCollection
from lfads_runs.io.lfads_input import read_lfads_input

_YAML = """
name: cosmooth
root: {root}
datasets:
  items:
    - name: dataset001
      loader: "lfads_runs.data.synthetic:lorenz_dataset"
      loader_args: {{dataset: dataset001, n_datasets: 1, n_conditions: 10,
                    trials_per_condition: 6, n_neurons: [20], duration_ms: 200,
                    bin_ms: 10, seed: 0}}
      {heldout}
run_specs:
  - {{name: single_dataset001, datasets: [dataset001]}}
params:
  - {{spikeBinMs: 10, c_batch_size: 4, c_factors_dim: 4}}
"""


def _collection(tmp_path: Path, heldout: str) -> RunCollection:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(textwrap.dedent(_YAML.format(root=tmp_path / "runs", heldout=heldout)))
    return RunCollection.from_yaml(cfg)


def _split(run):
    inp = read_lfads_input(run.input_files["dataset001"])
    return inp.extras.get("heldout_neurons"), inp.extras.get("heldin_neurons")


def test_indices_and_fraction_are_written_and_a_change_regenerates(tmp_path):
    """Indices land in the file; editing the YAML to a fraction rewrites the inputs."""
    run = _collection(tmp_path, "heldout_neurons: [3, 0, 17]").all_runs[0]
    run.prepare()
    out, hin = _split(run)
    assert out.tolist() == [0, 3, 17] and len(hin) == 17
    run2 = _collection(tmp_path, "heldout_neurons: {fraction: 0.25, seed: 4}").all_runs[0]
    assert run2.param_hash == run.param_hash  # the split is data, not a hyperparameter
    run2.prepare()
    out2, _ = _split(run2)
    assert len(out2) == 5 and out2.tolist() != [0, 3, 17]
    again = _collection(tmp_path, "heldout_neurons: {fraction: 0.25, seed: 4}").all_runs[0]
    assert again.prepare() is None  # up to date: nothing rewritten
    spec = again.model_spec()
    assert spec.datasets[0].n_encoded == 15


def test_out_of_range_index_fails_at_prepare_and_writes_nothing(tmp_path):
    """An index past the last neuron: DataError naming dataset and key; no input file."""
    run = _collection(tmp_path, "heldout_neurons: [2, 20]").all_runs[0]
    with pytest.raises(DataError, match=r"dataset001: heldout_neurons.*20, out of range"):
        run.prepare()
    assert not list(Path(run.path_common_data).glob("lfads_*.h5"))


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("heldout_neurons: {fraction: 1.5}", "fraction"),
        ("heldout_neurons: [1, 1]", "more than once"),
        ("heldout_neurons: [-1]", "non-negative"),
        ("heldout_neurons: {fraction: 0.2, sed: 1}", "sed"),
        ("heldout_neurons: abc", "expected a list"),
    ],
)
def test_malformed_yaml_is_a_config_error(tmp_path, value, match):
    """Bad forms of heldout_neurons fail when the YAML loads, naming the key."""
    with pytest.raises(ConfigError, match=match) as exc:
        _collection(tmp_path, value)
    assert "heldout_neurons" in str(exc.value)
    assert not (tmp_path / "runs").exists()
