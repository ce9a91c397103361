"""ModelTrainedParameters: fields, helpers, display, export and validation against TF's files."""

from __future__ import annotations

import shutil
from pathlib import Path

import attrs
import h5py
import numpy as np
import pytest
from conftest import TF_CASES, manifest

from lfads_runs.dump import spec_from_inputs, spec_from_output_dir
from lfads_runs.exceptions import MissingOutputError, ModelParamsError
from lfads_runs.hparams import Hyperparameters
from lfads_runs.io.lfads_input import find_input_files
from lfads_runs.io.model_params import write_model_params
from lfads_runs.model_spec import DatasetSpec, ModelSpec
from lfads_runs.trained_params import FIELDS, GROUPS, ModelTrainedParameters

NAMES = {
    "stitch2": ("dataset001", "dataset002"),
    "ctrl1": ("dataset001",),
    "gauss1": ("dataset001",),
    "extin1": ("dataset001",),
}

# Shapes of every present field, per case, from the fixtures' README and the spec's key tables.
GRU = [
    "ic_enc_fwd_t0",
    "ic_enc_fwd_gru_xh_to_gates_ru_W",
    "ic_enc_fwd_gru_xh_to_gates_ru_b",
    "ic_enc_fwd_gru_xrh_to_c_W",
    "ic_enc_fwd_gru_xrh_to_c_b",
]
CI = [n.replace("ic_enc", "ci_enc").replace("gates_ru", "ru") for n in GRU]


def _enc(names, e_in, h):
    shapes = [(1, h), (e_in + h, 2 * h), (1, 2 * h), (e_in + h, h), (1, h)]
    return dict(zip(names, shapes, strict=True))


def _both(names, e_in, h):
    out = _enc(names, e_in, h)
    out.update(_enc([n.replace("fwd", "rev") for n in names], e_in, h))
    return out


def _g0(h, i):
    return {
        "prior_g0_mean": (1, i),
        "prior_g0_logvar": (1, i),
        "ic_enc_to_posterior_g0_mean_W": (2 * h, i),
        "ic_enc_to_posterior_g0_mean_b": (1, i),
        "ic_enc_to_posterior_g0_logvar_W": (2 * h, i),
        "ic_enc_to_posterior_g0_logvar_b": (1, i),
    }


def _gen(g, f, g_in=0):
    out = {
        "gen_gengru_h_to_ru_W": (g, 2 * g),
        "gen_gengru_h_to_ru_b": (1, 2 * g),
        "gen_gengru_rh_to_c_W": (g, g),
        "gen_gengru_rh_to_c_b": (1, g),
        "gen_to_factors_W": (g, f),
    }
    if g_in:
        out.update({"gen_gengru_x_to_ru_W": (g_in, 2 * g), "gen_gengru_x_to_c_W": (g_in, g)})
    return out


def _con(c_in, c, u, h_ci, e_in):
    out = _both(CI, e_in, h_ci)
    out.update(
        {
            "con_gengru_x_to_ru_W": (c_in, 2 * c),
            "con_gengru_h_to_ru_W": (c, 2 * c),
            "con_gengru_h_to_ru_b": (1, 2 * c),
            "con_gengru_x_to_c_W": (c_in, c),
            "con_gengru_rh_to_c_W": (c, c),
            "con_gengru_rh_to_c_b": (1, c),
            "prior_ar1_logevars": (1, u),
            "prior_ar1_logatau": (1, u),
            "con_co": (1, c),
            "con_to_posterior_co_mean_W": (c, u),
            "con_to_posterior_co_mean_b": (1, u),
            "con_to_posterior_co_logvar_W": (c, u),
            "con_to_posterior_co_logvar_b": (1, u),
        }
    )
    return out


SHAPES = {
    "stitch2": {
        "x_to_infac_W": ((20, 6), (23, 6)),
        "x_to_infac_b": ((1, 6), (1, 6)),
        **_both(GRU, 6, 16),
        **_g0(16, 16),
        **_gen(16, 6),
        "factors_to_logrates_W": ((6, 20), (6, 23)),
        "factors_to_logrates_b": ((1, 20), (1, 23)),
    },
    "ctrl1": {
        **_both(GRU, 22, 12),
        **_g0(12, 8),
        "g0_to_gen_ic_W": (8, 14),
        "g0_to_gen_ic_b": (1, 14),
        **_con(2 * 10 + 5, 12, 2, 10, 22),
        **_gen(14, 5, 2),
        "factors_to_logrates_W": ((5, 22),),
        "factors_to_logrates_b": ((1, 22),),
    },
    "gauss1": {
        **_both(GRU, 10, 12),
        **_g0(12, 8),
        "g0_to_gen_ic_W": (8, 14),
        "g0_to_gen_ic_b": (1, 14),
        **_con(2 * 8 + 5, 10, 1, 8, 10),
        **_gen(14, 5, 1),
        "factors_to_means_W": ((5, 10),),
        "factors_to_means_b": ((1, 10),),
        "factors_to_logvars_W": ((5, 10),),
        "factors_to_logvars_b": ((1, 10),),
    },
    "extin1": {
        **_both(GRU, 12, 12),
        **_g0(12, 8),
        "g0_to_gen_ic_W": (8, 14),
        "g0_to_gen_ic_b": (1, 14),
        **_con(2 * 8 + 5, 10, 2, 8, 12),
        **_gen(14, 5, 3),
        "factors_to_logrates_W": ((5, 12),),
        "factors_to_logrates_b": ((1, 12),),
    },
}


def _out(tf_fixtures, case) -> Path:
    return tf_fixtures / case / "lfadsOutput"


def _load(tf_fixtures, case, **kw) -> ModelTrainedParameters:
    out = _out(tf_fixtures, case)
    return ModelTrainedParameters.from_file(
        out / "model_params", NAMES[case], spec_from_output_dir(out), **kw
    )


def _copy(tf_fixtures, case, tmp_path) -> Path:
    dst = tmp_path / "model_params"
    shutil.copy(_out(tf_fixtures, case) / "model_params", dst)
    dst.chmod(0o644)
    return dst


def test_fields_cover_the_class():
    """FIELDS lists exactly the array attributes, grouped in the MATLAB display order."""
    names = [a.name for a in attrs.fields(ModelTrainedParameters)]
    assert names[:4] == ["dataset_names", "global_step", "learning_rate", "source"]
    assert names[4:] == [f.name for f in FIELDS]
    assert GROUPS[0] == "Read-in from spikes to input factors"
    assert GROUPS[-1] == "Generator output and readout"
    assert len(FIELDS) == 57


@pytest.mark.parametrize("case", TF_CASES)
def test_fields_equal_raw_hdf5(tf_fixtures, case):
    """Every field equals its raw HDF5 array bit for bit; absent parts are None."""
    p = _load(tf_fixtures, case)
    path = _out(tf_fixtures, case) / "model_params"
    with h5py.File(path, "r") as f:
        used = set()
        for field, value in p.fields():
            if field.per_dataset:
                keys = [field.hdf5_key(ds) for ds in NAMES[case]]
                if value is None:
                    assert not any(k in f for k in keys), field.name
                    continue
                assert len(value) == len(keys)
                for k, a in zip(keys, value, strict=True):
                    assert a.dtype == np.float32 and a.tobytes() == f[k][()].tobytes(), k
                    assert a.shape == f[k].shape
                    used.add(k)
            else:
                k = field.hdf5_key()
                if value is None:
                    assert k not in f, field.name
                    continue
                assert value.dtype == np.float32 and value.shape == f[k].shape
                assert value.tobytes() == f[k][()].tobytes(), k
                used.add(k)
        scalars = {
            k
            for k in f
            if k[len("LFADS_") :].split(":")[0]
            in ("global_step", "learning_rate", "beta1_power", "beta2_power")
        }
        assert used | scalars == {k for k in f if "Adam" not in k}
        assert p.global_step == int(f["LFADS_global_step:0"][()])
        assert p.learning_rate == float(f["LFADS_learning_rate:0"][()])
    assert p.source == path


@pytest.mark.parametrize("case", TF_CASES)
def test_shapes_table(tf_fixtures, case):
    """Each case's present fields and shapes are exactly the expected table."""
    p = _load(tf_fixtures, case)
    got = {}
    for field, value in p.fields():
        if value is None:
            continue
        got[field.name] = tuple(a.shape for a in value) if field.per_dataset else value.shape
    assert got == SHAPES[case]


def test_dataset_order_follows_the_run(tf_fixtures):
    """Per-dataset tuples follow the order of dataset_names, not the file's."""
    out = _out(tf_fixtures, "stitch2")
    p = ModelTrainedParameters.from_file(
        out / "model_params", ["dataset002", "dataset001"], spec_from_output_dir(out)
    )
    assert p.dataset_names == ("dataset002", "dataset001")
    assert [w.shape for w in p.factors_to_logrates_W] == [(6, 23), (6, 20)]
    assert p.num_channels_by_dataset == (23, 20)
    assert p.by_dataset("x_to_infac_W")["dataset001"].shape == (20, 6)


def test_helpers(tf_fixtures):
    """Normalised generator read-out, concatenations, channel counts, dataset indices."""
    p = _load(tf_fixtures, "stitch2")
    w = p.gen_to_factors_W
    wn = p.gen_to_factors_W_normalized
    assert wn.dtype == np.float32 and wn.shape == w.shape
    np.testing.assert_allclose(np.linalg.norm(wn, axis=0), 1.0, rtol=1e-6)
    np.testing.assert_allclose(wn, w / np.linalg.norm(w, axis=0), rtol=1e-6)
    assert p.num_datasets == 2
    assert p.num_channels_by_dataset == (20, 23)
    assert p.num_channels_all_datasets == 43
    idx = p.dataset_idx_concatenated
    assert idx.shape == (43,) and (idx[:20] == 0).all() and (idx[20:] == 1).all()
    cat = p.factors_to_logrates_W_concatenated
    assert cat.shape == (6, 43)
    np.testing.assert_array_equal(cat[:, 20:], p.factors_to_logrates_W[1])
    assert p.factors_to_logrates_b_concatenated.shape == (1, 43)
    assert not p.is_gaussian
    g = _load(tf_fixtures, "gauss1")
    assert g.is_gaussian and g.factors_to_logrates_W_concatenated is None
    assert g.num_channels_by_dataset == (10,)


def test_as_dict(tf_fixtures):
    """as_dict gives per-dataset dicts, skips absent fields unless asked."""
    p = _load(tf_fixtures, "stitch2")
    d = p.as_dict()
    assert d["dataset_names"] == ("dataset001", "dataset002")
    assert d["global_step"] == manifest("stitch2")["lve_step"]
    assert set(d["factors_to_logrates_W"]) == {"dataset001", "dataset002"}
    assert "con_co" not in d
    assert p.as_dict(include_absent=True)["con_co"] is None


def test_repr_and_html(tf_fixtures):
    """The text and HTML displays show every group, shapes, dtypes and absent parts."""
    p = _load(tf_fixtures, "ctrl1")
    text = repr(p)
    step = manifest("ctrl1")["lve_step"]
    assert text.startswith(f"ModelTrainedParameters(datasets dataset001; global_step {step}")
    for group in GROUPS:
        assert f"\n  {group}\n" in text
    assert "    gen_gengru_rh_to_c_W" in text and "[14, 14] float32" in text
    assert "x_to_infac_W" in text and "absent" in text
    page = p._repr_html_()
    assert page.startswith("<table>") and page.endswith("</table>")
    assert all(g in page for g in GROUPS) and "[14, 14] float32" in page


def test_to_hdf5(tf_fixtures, tmp_path):
    """The export has /<field>/<dataset>, vlen dataset_names and the derived fields."""
    p = _load(tf_fixtures, "stitch2")
    dst = p.to_hdf5(tmp_path / "export.h5")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["export.h5"]
    with h5py.File(dst, "r") as f:
        assert [s.decode() for s in f["dataset_names"][()]] == ["dataset001", "dataset002"]
        assert h5py.check_string_dtype(f["dataset_names"].dtype) is not None
        np.testing.assert_array_equal(
            f["factors_to_logrates_W/dataset002"][()], p.factors_to_logrates_W[1]
        )
        np.testing.assert_array_equal(f["gen_gengru_rh_to_c_W"][()], p.gen_gengru_rh_to_c_W)
        assert f["factors_to_logrates_W_concatenated"].shape == (6, 43)
        assert f["global_step"][()] == manifest("stitch2")["lve_step"]
        assert list(f["num_channels_by_dataset"][()]) == [20, 23]
        assert "con_co" not in f


# ---------------------------------------------------------------- validation
def _edit(path: Path, fn) -> None:
    with h5py.File(path, "r+") as f:
        fn(f)


def test_missing_required_key(tf_fixtures, tmp_path):
    """A missing key is reported with its field, key, expected shape and the file."""
    path = _copy(tf_fixtures, "ctrl1", tmp_path)
    _edit(path, lambda f: f.__delitem__("LFADS_con_c0:0"))
    spec = spec_from_output_dir(_out(tf_fixtures, "ctrl1"))
    with pytest.raises(ModelParamsError) as e:
        ModelTrainedParameters.from_file(path, ["dataset001"], spec)
    msg = str(e.value)
    assert str(path) in msg
    assert "con_co (LFADS_con_c0:0): missing, expected shape [1, 12]" in msg


def test_wrong_shape(tf_fixtures, tmp_path):
    """A wrong shape names the field, key, expected and actual shapes."""
    path = _copy(tf_fixtures, "stitch2", tmp_path)
    key = "LFADS_glm_fac_2_logrates_dataset002.h5_W:0"

    def swap(f):
        del f[key]
        f.create_dataset(key, data=np.zeros((6, 22), np.float32))

    _edit(path, swap)
    spec = spec_from_output_dir(_out(tf_fixtures, "stitch2"))
    with pytest.raises(ModelParamsError) as e:
        ModelTrainedParameters.from_file(path, NAMES["stitch2"], spec)
    assert f"factors_to_logrates_W[dataset002] ({key}): shape [6, 22], expected [6, 23]" in str(
        e.value
    )


def test_nan_and_inf(tf_fixtures, tmp_path):
    """NaN or Inf in any weight is an error naming the field and key."""
    path = _copy(tf_fixtures, "gauss1", tmp_path)

    def poison(f):
        f["LFADS_gen_gen_2_fac_W:0"][0, 0] = np.nan
        f["LFADS_glm_fac_2_logvars_dataset001.h5_b:0"][0, 3] = np.inf

    _edit(path, poison)
    spec = spec_from_output_dir(_out(tf_fixtures, "gauss1"))
    for s in (spec, None):
        with pytest.raises(ModelParamsError) as e:
            ModelTrainedParameters.from_file(path, ["dataset001"], s)
        msg = str(e.value)
        assert "(LFADS_gen_gen_2_fac_W:0): 1 of 70 values are NaN or Inf" in msg
        assert "LFADS_glm_fac_2_logvars_dataset001.h5_b:0" in msg


def test_all_problems_in_one_error(tf_fixtures, tmp_path):
    """Several problems (missing, wrong shape, unexpected key, dtype) come in one error."""
    path = _copy(tf_fixtures, "extin1", tmp_path)

    def damage(f):
        del f["LFADS_gen_GenGRU_Gates_x_2_ru_W:0"]
        del f["LFADS_z_prior_g0_mean:0"]
        f.create_dataset("LFADS_z_prior_g0_mean:0", data=np.zeros((1, 9), np.float32))
        f.create_dataset("LFADS_mystery_W:0", data=np.zeros((2, 2), np.float32))
        del f["LFADS_con_c0:0"]
        f.create_dataset("LFADS_con_c0:0", data=np.zeros((1, 10), np.float64))

    _edit(path, damage)
    spec = spec_from_output_dir(_out(tf_fixtures, "extin1"))
    with pytest.raises(ModelParamsError) as e:
        ModelTrainedParameters.from_file(path, ["dataset001"], spec)
    msg = str(e.value)
    assert "(4 problems)" in msg
    assert (
        "gen_gengru_x_to_ru_W (LFADS_gen_GenGRU_Gates_x_2_ru_W:0): missing, expected shape [3, 28]"
        in msg
    )
    assert "prior_g0_mean (LFADS_z_prior_g0_mean:0): shape [1, 9], expected [1, 8]" in msg
    assert "LFADS_mystery_W:0: unexpected key" in msg
    assert "con_co (LFADS_con_c0:0): dtype float64, expected float32" in msg


def test_wrong_model_spec(tf_fixtures):
    """Validating a file against another case's model lists the mismatches."""
    spec = spec_from_output_dir(_out(tf_fixtures, "extin1"))
    path = _out(tf_fixtures, "ctrl1") / "model_params"
    with pytest.raises(ModelParamsError, match=r"problems\)") as e:
        ModelTrainedParameters.from_file(path, ["dataset001"], spec)
    assert (
        "gen_gengru_x_to_ru_W (LFADS_gen_GenGRU_Gates_x_2_ru_W:0): shape [2, 28], expected [3, 28]"
        in str(e.value)
    )


def test_dataset_names_must_match_spec(tf_fixtures):
    """Names that are not the model's datasets are reported."""
    out = _out(tf_fixtures, "stitch2")
    with pytest.raises(ModelParamsError, match="not the run's datasets"):
        ModelTrainedParameters.from_file(
            out / "model_params", ["dataset001", "dataset003"], spec_from_output_dir(out)
        )


def test_truncated_file(tf_fixtures, tmp_path):
    """A truncated HDF5 file is a ModelParamsError naming the file."""
    path = _copy(tf_fixtures, "ctrl1", tmp_path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(ModelParamsError) as e:
        ModelTrainedParameters.from_file(path, ["dataset001"])
    assert str(path) in str(e.value)
    with pytest.raises(MissingOutputError):
        ModelTrainedParameters.from_file(tmp_path / "nope", ["dataset001"])


def test_without_spec_consistency(tf_fixtures, tmp_path):
    """Without a spec: incomplete per-dataset fields and unknown datasets are caught."""
    out = _out(tf_fixtures, "stitch2")
    p = ModelTrainedParameters.from_file(out / "model_params")  # names inferred
    assert p.dataset_names == ("dataset001", "dataset002")
    with pytest.raises(ModelParamsError, match="unexpected key"):
        ModelTrainedParameters.from_file(out / "model_params", ["dataset001"])
    path = _copy(tf_fixtures, "stitch2", tmp_path)
    _edit(path, lambda f: f.__delitem__("LFADS_x_2_infac_dataset002.h5_b:0"))
    with pytest.raises(ModelParamsError, match="x_to_infac_b: present for some datasets"):
        ModelTrainedParameters.from_file(path, NAMES["stitch2"])
    _edit(path, lambda f: f.__delitem__("LFADS_gen_gen_2_fac_W:0"))
    with pytest.raises(ModelParamsError, match="gen_to_factors_W .*missing"):
        ModelTrainedParameters.from_file(path, NAMES["stitch2"])


def test_without_spec_dimension_checks(tf_fixtures, tmp_path):
    """Without a spec, a bias that does not match its weight and factor mismatches are caught."""
    path = _copy(tf_fixtures, "ctrl1", tmp_path)

    def damage(f):
        del f["LFADS_glm_fac_2_logrates_dataset001.h5_W:0"]
        f.create_dataset("LFADS_glm_fac_2_logrates_dataset001.h5_W:0", data=np.ones((4, 21), "f4"))

    _edit(path, damage)
    with pytest.raises(ModelParamsError) as e:
        ModelTrainedParameters.from_file(path, ["dataset001"])
    msg = str(e.value)
    assert "factors_to_logrates_b" in msg and "expected [1, 21]" in msg
    assert "does not have 5 factors" in msg


@pytest.mark.parametrize("case", TF_CASES)
def test_spec_from_inputs_matches_output_dir(tf_fixtures, case):
    """The model derived from the input files equals the one from the hyperparameters file."""
    out = _out(tf_fixtures, case)
    a = spec_from_output_dir(out)
    b = spec_from_inputs(a.hps, find_input_files(tf_fixtures / case / "lfadsInput"))
    assert a.checkpoint_shapes() == b.checkpoint_shapes()
    assert a.datasets == b.datasets


def _synthetic(tmp_path, **hps) -> tuple[Path, ModelSpec]:
    spec = ModelSpec.build(
        Hyperparameters(**hps), [DatasetSpec("dataset001", 9), DatasetSpec("dataset002", 7)], 20
    )
    rng = np.random.default_rng(0)
    tensors = {
        n: np.int64(5) if n == "LFADS/global_step" else rng.standard_normal(s).astype(np.float32)
        for n, s in spec.checkpoint_shapes().items()
    }
    path = tmp_path / "model_params"
    write_model_params(path, tensors)
    return path, spec


def test_ic_dim_zero_has_gen_g0(tmp_path):
    """A model without IC encoder carries the learned generator state gen_g0."""
    path, spec = _synthetic(
        tmp_path,
        ic_dim=0,
        co_dim=2,
        ci_enc_dim=4,
        con_dim=5,
        gen_dim=6,
        factors_dim=3,
        do_causal_controller=True,
    )
    p = ModelTrainedParameters.from_file(path, ["dataset001", "dataset002"], spec)
    assert p.gen_g0.shape == (1, 6)
    assert p.ic_enc_fwd_t0 is None and p.prior_g0_mean is None and p.g0_to_gen_ic_W is None
    assert p.ci_enc_fwd_t0.shape == (1, 4) and p.ci_enc_rev_t0 is None  # causal controller
    assert p.con_gengru_x_to_ru_W.shape == (4 + 3, 10)
    assert p.global_step == 5
