"""AutoLFADS features of the engine: coordinated dropout, sample validation, held-out
neurons and forward prediction, their selection metrics, and their bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lfads_runs import ConfigError, DataError, RunParams  # noqa: E402
from lfads_runs.data.cosmoothing import split_extras  # noqa: E402
from lfads_runs.data.synthetic import lorenz  # noqa: E402
from lfads_runs.engine import train  # noqa: E402
from lfads_runs.engine.data import build_spec, load_datasets  # noqa: E402
from lfads_runs.engine.masking import ElementMasks  # noqa: E402
from lfads_runs.engine.model import LfadsModel, PassConfig  # noqa: E402
from lfads_runs.engine.params import ParamStore  # noqa: E402
from lfads_runs.engine.valid_metrics import SMOOTHING  # noqa: E402
from lfads_runs.hparams import Hyperparameters  # noqa: E402
from lfads_runs.io.fitlog import read_fitlog_rows  # noqa: E402
from lfads_runs.io.lfads_input import LfadsInput, write_lfads_input  # noqa: E402
from lfads_runs.results.nlb_metrics import bits_per_spike  # noqa: E402

HPS = dict(
    batch_size=8, factors_dim=4, gen_dim=16, ic_dim=8, ic_enc_dim=8, co_dim=2, ci_enc_dim=8,
    con_dim=8, kl_increase_steps=10, l2_increase_steps=10, l2_gen_scale=50.0,
)  # fmt: skip
HELDOUT = [1, 4, 9]
FP = 5


def _write(folder: Path, *, heldout=HELDOUT, fp=FP, neurons=12, seed=0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    d = lorenz(
        n_datasets=1, n_conditions=8, trials_per_condition=6, n_neurons=(neurons,),
        duration_ms=300, bin_ms=10, seed=seed, mean_rate_hz=30.0,
    )  # fmt: skip
    ds = d.datasets[0]
    valid = np.arange(ds.counts.shape[0]) % 4 == 0
    T = ds.counts.shape[1]
    extras = split_extras(neurons, T, heldout=heldout, forward_bins=fp)
    write_lfads_input(
        folder / "lfads_dataset001.h5",
        LfadsInput(train_data=ds.counts[~valid], valid_data=ds.counts[valid], extras=extras),
    )
    return folder


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    return _write(tmp_path_factory.mktemp("autolfads") / "lfadsInput")


def _model(inputs, **kw):
    hps = Hyperparameters(**HPS, fp_len=FP, **kw)
    datasets = load_datasets(inputs, hps)
    spec = build_spec(hps, datasets)
    model = LfadsModel(spec)
    model.initialize(torch.Generator().manual_seed(0))
    return hps, datasets, spec, model


def test_encoders_never_see_heldout_neurons_or_forward_bins(inputs):
    """Changing held-out neurons or forward bins leaves the inferred factors unchanged."""
    _, datasets, spec, model = _model(inputs)
    ds = datasets["dataset001.h5"]
    assert spec.datasets[0].n_encoded == 12 - len(HELDOUT) and spec.num_steps_encoded == 30 - FP
    assert model.params["LFADS/ic_enc_fwd/GRU/Gates/xh_2_ru/W"].shape[0] == 9 + 8
    x = torch.as_tensor(ds.valid_data, dtype=torch.float32)
    cfg = PassConfig.for_kind("posterior_push_mean")

    def factors(data):
        with torch.no_grad():
            res = model(data, ds.name, cfg, generator=torch.Generator().manual_seed(1),
                        want_outputs=True)  # fmt: skip
        return res.outputs["factors"], res.outputs["output_dist_params"]

    f0, rates = factors(x)
    assert rates.shape == x.shape  # the read-out predicts every neuron, every bin
    changed = x.clone()
    changed[:, :, HELDOUT] += 7.0
    changed[:, -FP:, :] += 3.0
    f1, _ = factors(changed)
    assert torch.equal(f0, f1)
    heldin_changed = x.clone()
    heldin_changed[:, 3, 0] += 5.0
    assert not torch.equal(f0, factors(heldin_changed)[0])


def test_masks_split_seen_and_counted_elements(inputs):
    """CD hides ~cd_rate of the encoded elements and counts only those; SV is fixed per trial."""
    hps, datasets, spec, _ = _model(inputs, cd_rate=0.4, sv_rate=0.25, sv_seed=3)
    from lfads_runs.engine._rng import NoiseSource

    masks = ElementMasks(hps, spec, datasets, torch.device("cpu"))
    ds = datasets["dataset001.h5"]
    idx = np.arange(16)
    x = torch.as_tensor(ds.train_data[idx], dtype=torch.float32)
    scale, mask = masks.for_batch(ds.name, "train", idx, x, NoiseSource(5))
    heldin = [i for i in range(12) if i not in HELDOUT]
    enc_mask = mask[:, : 30 - FP][:, :, heldin]
    seen = scale > 0
    assert not (seen & (enc_mask > 0)).any()  # no element is both input and target
    sv_kept = torch.as_tensor(masks.sv_keep[ds.name]["train"][idx])
    assert abs(1 - sv_kept.float().mean().item() - 0.25) < 0.05
    assert abs((seen.float().sum() / sv_kept.sum()).item() - 0.6) < 0.05
    assert torch.allclose(scale[seen], torch.tensor(1 / (0.6 * 0.75)))
    assert (mask[:, :, HELDOUT] == 1).all() and (mask[:, -FP:] == 1).all()
    # The SV mask is the same at validation, and CD is off there.
    vscale, vmask = masks.for_batch(ds.name, "train", idx, x, None)
    assert vmask is not None and torch.equal(vscale > 0, sv_kept)
    again = ElementMasks(hps, spec, datasets, torch.device("cpu"))
    assert np.array_equal(again.sv_keep[ds.name]["valid"], masks.sv_keep[ds.name]["valid"])


def test_training_reports_selection_metrics_and_resumes_exactly(inputs, tmp_path):
    """CD + SV + co-smoothing + FP: metrics per epoch, SV-driven LVE, exact resume."""
    hps = Hyperparameters(**HPS, cd_rate=0.3, cd_pass_rate=0.1, sv_rate=0.2, fp_len=FP)
    ref = train(inputs, tmp_path / "ref", hps.evolve(max_epochs=4), seed=3, log=lambda m: None)
    rows = read_fitlog_rows(tmp_path / "ref" / "fitlog.csv")
    assert len(rows) == 4
    names = {
        "valid_nll_heldin", "valid_bps_heldin", "valid_nll_heldout", "valid_cobps",
        "valid_nll_fp", "valid_fpbps", "valid_nll_sv", "smth_valid_nll_heldin", "selection_cost",
    }  # fmt: skip
    assert set(rows[0].metrics) == names and set(ref.metrics) == names
    for a, b in zip(rows, rows[1:], strict=False):
        want = (
            SMOOTHING * a.metrics["smth_valid_nll_heldin"]
            + (1 - SMOOTHING) * b.metrics["valid_nll_heldin"]
        )
        assert b.metrics["smth_valid_nll_heldin"] == pytest.approx(want, rel=1e-4)
        assert b.metrics["selection_cost"] == b.metrics["valid_nll_sv"]
    assert ref.lowest_valid_cost == pytest.approx(
        min(r.metrics["valid_nll_sv"] for r in rows[1:]), rel=1e-5
    )
    hp_file = json.loads(next((tmp_path / "ref").glob("hyperparameters-*.txt")).read_text())
    assert hp_file["cd_rate"] == 0.3 and hp_file["fp_len"] == FP
    out = tmp_path / "resumed"
    train(inputs, out, hps.evolve(max_epochs=2), seed=3, log=lambda m: None)
    train(inputs, out, hps.evolve(max_epochs=4), seed=3, log=lambda m: None)
    assert (out / "fitlog.csv").read_bytes() == (tmp_path / "ref" / "fitlog.csv").read_bytes()


def test_valid_bits_per_spike_is_nlb_bits_per_spike_of_the_sampled_rates(inputs, tmp_path):
    """The engine's cobps equals nlb's formula on the rates the validation pass sampled."""
    hps, datasets, spec, model = _model(inputs)
    from lfads_runs.engine.valid_metrics import ValidMetrics

    ds = datasets["dataset001.h5"]
    vm = ValidMetrics(spec, datasets, {}, torch.device("cpu"))
    x = torch.as_tensor(ds.valid_data, dtype=torch.float32)
    with torch.no_grad():
        res = model(x, ds.name, PassConfig.for_kind("valid"), want_outputs=True,
                    want_elementwise=True, generator=torch.Generator().manual_seed(2))  # fmt: skip
    vm.add(ds.name, np.arange(x.shape[0]), res.outputs["log_p_elem"])
    got = vm.finish()
    # Unclipped rates: the engine's likelihood uses the unclipped read-out, as LFADS does.
    rates = res.outputs["output_dist_params"].double().numpy()
    y = ds.valid_data.astype(float)
    T_enc = 30 - FP
    want = bits_per_spike(rates[:, :T_enc, HELDOUT], y[:, :T_enc, HELDOUT])
    assert got["valid_cobps"] == pytest.approx(want, rel=1e-6, abs=1e-9)
    assert got["valid_fpbps"] == pytest.approx(
        bits_per_spike(rates[:, T_enc:], y[:, T_enc:]), rel=1e-6, abs=1e-9
    )


def test_defaults_leave_params_hashes_flags_and_files_unchanged():
    """New RunParams fields enter hash and flags only when set; defaults are TF LFADS."""
    base = RunParams()
    assert RunParams(cd_rate=0.0, sv_rate=0, fp_len=0).param_hash == base.param_hash
    assert not any("cd_rate" in f or "fp_len" in f for f in base.lfads_flags(1))
    cd = RunParams.from_mapping({"c_cd_rate": 0.25, "fp_len": 5})
    assert cd.param_hash != base.param_hash and cd.data_hash == base.data_hash
    assert "--cd_rate=0.25" in cd.lfads_flags(1) and "--fp_len=5" in cd.lfads_flags(1)
    hp = cd.to_hparams(1)
    assert hp.cd_rate == 0.25 and hp.fp_len == 5 and hp.autolfads_on
    assert not base.to_hparams(1).autolfads_on


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"cd_rate": 1.0}, "cd_rate"),
        ({"cd_rate": -0.1}, "cd_rate"),
        ({"sv_rate": float("nan")}, "sv_rate"),
        ({"sv_rate": 1.5}, "sv_rate"),
        ({"cd_pass_rate": 1.1}, "cd_pass_rate"),
    ],
)
def test_rates_outside_their_range_are_config_errors(kw, match):
    """cd_rate/sv_rate outside [0, 1) fail in RunParams and Hyperparameters, naming the field."""
    with pytest.raises(ConfigError, match=match):
        RunParams(**kw)
    with pytest.raises(ConfigError, match=match):
        Hyperparameters(**kw)


@pytest.mark.parametrize(
    ("heldout", "fp", "match"),
    [
        ([3, 12], 0, "out of range"),
        ([-1], 0, "out of range"),
        ([2, 2], 0, "more than once"),
        (list(range(12)), 0, "every neuron"),
        ([1], 30, "shorter than the trial"),
    ],
)
def test_bad_split_is_refused_before_anything_is_written(tmp_path, heldout, fp, match):
    """Out-of-range/duplicate held-out indices or a too-long window: DataError, no file."""
    with pytest.raises(DataError, match=match):
        _write(tmp_path / "in", heldout=heldout, fp=fp)
    assert not list((tmp_path / "in").glob("*"))


def test_bad_split_in_a_file_fails_training_without_output(tmp_path):
    """An input file whose held-in list overlaps the held-out one: DataError naming the key."""
    folder = _write(tmp_path / "in", heldout=[1], fp=0)
    path = folder / "lfads_dataset001.h5"
    import h5py

    with h5py.File(path, "r+") as f:
        del f["heldin_neurons"]
        f["heldin_neurons"] = np.arange(12)
    with pytest.raises(DataError, match="both held in"):
        train(folder, tmp_path / "out", Hyperparameters(**HPS, max_epochs=1), seed=0)
    assert not (tmp_path / "out").exists()
    ok = _write(tmp_path / "in2", heldout=[1], fp=4)
    with pytest.raises(DataError, match="set fp_len to 4"):
        train(ok, tmp_path / "out", Hyperparameters(**HPS, max_epochs=1), seed=0)
    with pytest.raises(DataError, match="smaller than the trial"):
        train(
            _write(tmp_path / "in3", heldout=[1], fp=0),
            tmp_path / "out",
            Hyperparameters(**HPS, fp_len=30, max_epochs=1),
            seed=0,
        )
    assert not (tmp_path / "out").exists()


def test_paramstore_readin_alignment_uses_heldin_rows(inputs):
    """A stitched read-in initialised from an alignment matrix takes the held-in rows."""
    hps = Hyperparameters(**HPS)
    from lfads_runs.model_spec import DatasetSpec, ModelSpec

    spec = ModelSpec.build(hps, [DatasetSpec("a", 6, True, heldin=(0, 2, 5)),
                                 DatasetSpec("b", 5, True)], 10)  # fmt: skip
    mat = np.arange(24, dtype=float).reshape(6, 4)
    store = ParamStore(spec)
    store.initialize(torch.Generator().manual_seed(0),
                     {"a.h5": (mat, None, (0, 2, 5)), "b.h5": (np.ones((5, 4)), None)})  # fmt: skip
    w = store["LFADS/x_2_infac_a.h5/W"].detach().numpy()
    assert np.array_equal(w, mat[[0, 2, 5]].astype(np.float32))
    assert store["LFADS/glm/fac_2_logrates_a.h5/W"].shape == (4, 6)


def test_stitched_model_with_a_split_in_one_dataset_trains(tmp_path):
    """Per-dataset splits: one stitched dataset holds neurons out, the other none."""
    folder = _write(tmp_path / "in", heldout=[0, 3], fp=0)
    d = lorenz(n_datasets=1, n_conditions=8, trials_per_condition=6, n_neurons=(10,),
               duration_ms=300, bin_ms=10, seed=4, mean_rate_hz=30.0).datasets[0]  # fmt: skip
    valid = np.arange(48) % 4 == 0
    write_lfads_input(
        folder / "lfads_dataset002.h5",
        LfadsInput(train_data=d.counts[~valid], valid_data=d.counts[valid]),
    )
    hps = Hyperparameters(**HPS, max_epochs=2)
    res = train(folder, tmp_path / "out", hps, seed=0, log=lambda m: None)
    spec = build_spec(hps, load_datasets(folder, hps))
    assert [d.n_encoded for d in spec.datasets] == [10, 10]  # 12 - 2 held out; 10
    assert spec.datasets[0].heldin is not None and spec.datasets[1].heldin is None
    assert "valid_cobps" in res.metrics and "valid_fpbps" not in res.metrics
    rows = read_fitlog_rows(tmp_path / "out" / "fitlog.csv")
    assert rows[-1].metrics["valid_cobps"] == pytest.approx(res.metrics["valid_cobps"], abs=1e-5)
