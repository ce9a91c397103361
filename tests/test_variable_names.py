"""One declaration of LFADS's TensorFlow variable names (model_spec.VARIABLE_GROUPS).

The engine names its parameters from ModelSpec, and ModelTrainedParameters reads
checkpoints and model_params by the same table: whatever the engine writes into a
checkpoint must be a name the loader knows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lfads_runs.engine import train  # noqa: E402
from lfads_runs.hparams import Hyperparameters  # noqa: E402
from lfads_runs.io.checkpoints import list_checkpoints  # noqa: E402
from lfads_runs.io.lfads_input import LfadsInput, write_lfads_input  # noqa: E402
from lfads_runs.io.tensorbundle import bundle_index  # noqa: E402
from lfads_runs.layout import lfads_dataset_name  # noqa: E402
from lfads_runs.model_spec import (  # noqa: E402
    SCALAR_VARIABLES,
    TF_NAMES,
    DatasetSpec,
    ModelSpec,
    adam_slot_names,
)
from lfads_runs.trained_params import FIELDS  # noqa: E402

# (name, hyperparameters, datasets): between them every group of variables appears
CONFIGS = [
    (
        "stitched, bidirectional controller, ext input, g0 -> gen",
        dict(co_dim=1, ci_enc_dim=3, con_dim=4, do_causal_controller=False, ext_input_dim=1),
        ("dataset001", "dataset002"),
    ),
    (
        "one dataset, identity read-out, causal controller, ic_dim == gen_dim",
        dict(factors_dim=4, ic_dim=6, co_dim=1, ci_enc_dim=3, con_dim=4, do_causal_controller=True),
        ("dataset001",),
    ),
    ("gaussian, no ic encoder, no controller", dict(output_dist="gaussian", ic_dim=0), ("a",)),
]
BASE = dict(batch_size=4, factors_dim=3, gen_dim=6, ic_dim=4, ic_enc_dim=5, co_dim=0)


def _known(datasets) -> set[str]:
    names = {f.checkpoint_name(ds) for f in FIELDS if f.per_dataset for ds in datasets}
    names |= {f.checkpoint_name() for f in FIELDS if not f.per_dataset}
    return names | {s for n in names for s in adam_slot_names(n)} | set(SCALAR_VARIABLES)


def _inputs(folder: Path, datasets, ext: bool, gaussian: bool) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for name in datasets:
        kind = float if gaussian else int
        kw = {
            "train_data": rng.poisson(1.0, (8, 6, 4)).astype(kind),
            "valid_data": rng.poisson(1.0, (6, 6, 4)).astype(kind),
        }
        if ext:
            kw |= {
                "train_ext_input": rng.normal(size=(8, 6, 1)),
                "valid_ext_input": rng.normal(size=(6, 6, 1)),
            }
        write_lfads_input(folder / f"lfads_{name}.h5", LfadsInput(**kw))
    return folder


def test_fields_are_the_variable_table():
    assert [f.name for f in FIELDS] == list(TF_NAMES)
    assert all(("{ds}" in f.variable) == f.per_dataset for f in FIELDS)


@pytest.mark.parametrize(("label", "hps", "datasets"), CONFIGS, ids=[c[0] for c in CONFIGS])
def test_every_variable_of_a_spec_is_a_field(label, hps, datasets):
    specs = [DatasetSpec(d, 4) for d in datasets]
    spec = ModelSpec.build(Hyperparameters(**{**BASE, **hps}), specs, 6)
    unknown = {v.name for v in spec.variables} - _known(spec.dataset_names)
    assert not unknown, f"{label}: {sorted(unknown)}"


@pytest.mark.parametrize(("label", "hps", "datasets"), CONFIGS, ids=[c[0] for c in CONFIGS])
def test_every_tensor_the_engine_writes_is_known_to_the_loader(tmp_path, label, hps, datasets):
    ext, gaussian = hps.get("ext_input_dim", 0) > 0, hps.get("output_dist") == "gaussian"
    inputs = _inputs(tmp_path / "in", datasets, ext, gaussian)
    out = tmp_path / "out"
    train(inputs, out, Hyperparameters(**{**BASE, **hps}, max_epochs=1), seed=0, log=lambda s: None)
    prefixes = list_checkpoints(out)
    assert prefixes
    written = {name for prefix in prefixes for name in bundle_index(prefix)}
    unknown = written - _known([lfads_dataset_name(d) for d in datasets])
    assert not unknown, f"{label}: {sorted(unknown)}"
    assert set(SCALAR_VARIABLES) <= written
