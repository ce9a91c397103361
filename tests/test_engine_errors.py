"""Bad input gives one clear error naming the file, dataset, split or key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import lve_checkpoint

torch = pytest.importorskip("torch")

from lfads_runs.engine import infer, sample_posterior, train  # noqa: E402
from lfads_runs.engine.data import build_spec, load_datasets  # noqa: E402
from lfads_runs.exceptions import CheckpointError, DataError  # noqa: E402
from lfads_runs.hparams import Hyperparameters  # noqa: E402
from lfads_runs.io.lfads_input import LfadsInput, write_lfads_input  # noqa: E402

HPS = Hyperparameters(batch_size=4, factors_dim=3, gen_dim=6, ic_dim=4, ic_enc_dim=5, co_dim=0)


def _write(
    folder: Path, name="dataset001", n_train=8, n_valid=6, T=5, D=4, *, dtype=np.int64, **extra
) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    tr = rng.poisson(1.0, (n_train, T, D)).astype(dtype)
    va = rng.poisson(1.0, (n_valid, T, D)).astype(dtype)
    kw = {"train_data": tr, "valid_data": va, **extra}
    write_lfads_input(folder / f"lfads_{name}.h5", LfadsInput(**kw))
    return folder


def test_too_few_trials_names_dataset_and_split(tmp_path):
    d = _write(tmp_path / "in", name="sessionA", n_train=8, n_valid=4)
    with pytest.raises(DataError, match=r"sessionA\.h5.*valid split has 4 trials.*batch_size = 4"):
        train(d, tmp_path / "out", HPS, seed=0)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_nan_values_are_rejected(tmp_path):
    tr = np.ones((8, 5, 4))
    tr[3, 2, 1] = np.nan
    d = tmp_path / "in"
    d.mkdir()
    write_lfads_input(d / "lfads_g.h5", LfadsInput(train_data=tr, valid_data=np.ones((6, 5, 4))))
    hps = HPS.evolve(output_dist="gaussian")
    with pytest.raises(DataError, match=r"lfads_g\.h5: train_data holds NaN.*trial 3, time 2"):
        train(d, tmp_path / "out", hps, seed=0)


def test_nan_counts_in_new_trials_are_rejected(tmp_path):
    d = _write(tmp_path / "in")
    spec = build_spec(HPS, load_datasets(d, HPS))
    model_weights = {v.name: np.zeros(v.shape, np.float32) for v in spec.variables}
    counts = np.ones((2, 5, 4))
    counts[0, 0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        infer(model_weights, spec, counts, dataset="dataset001")
    with pytest.raises(DataError, match=r"must be trials x 5 x 4"):
        infer(model_weights, spec, np.ones((2, 5, 3)), dataset="dataset001")


def test_float_counts_for_poisson_and_ext_input_mismatch(tmp_path):
    d = _write(tmp_path / "a", dtype=np.float64)
    with pytest.raises(DataError, match="Poisson output needs integer spike counts"):
        load_datasets(d, HPS)
    d = _write(tmp_path / "b")
    with pytest.raises(DataError, match="ext_input_dim = 2 but the file has no train_ext_input"):
        load_datasets(d, HPS.evolve(ext_input_dim=2))


def test_alignment_matrix_of_wrong_shape(tmp_path):
    d = _write(tmp_path / "in", alignment_matrix_cxf=np.ones((4, 5)))
    with pytest.raises(DataError, match=r"alignment_matrix_cxf has shape \(4, 5\), expected"):
        load_datasets(d, HPS)


def test_missing_checkpoint_and_mismatched_model(tmp_path, tf_fixtures):
    d = _write(tmp_path / "in")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        sample_posterior(d, tmp_path / "empty", HPS, "posterior_push_mean")
    # A TF checkpoint of another model: the mismatch is named.
    ckpt = lve_checkpoint("ctrl1")
    with pytest.raises(
        CheckpointError, match=r"ic_enc_t0_fwd has shape \(1, 12\), this model expects \(1, 5\)"
    ):
        sample_posterior(d, tmp_path / "x", HPS, "posterior_push_mean", ckpt)
