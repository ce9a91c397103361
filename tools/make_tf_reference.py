#!/usr/bin/env python
"""Make the repository's own TensorFlow-LFADS reference cases (tests/data/tf_lfads/).

The original LFADS (tensorflow/models ``research/lfads``, lfads/models commit
fd700f0c) is run under TensorFlow 2.15 ``tf.compat.v1`` on synthetic Lorenz data
made by :mod:`lfads_runs.synthetic`. Its code is never committed here: this
script copies the five source files from a folder or a git mirror into a
temporary directory, applies the Python-3 / TF-compat syntax fixes listed in
``SOURCE_FIXES`` (each must match exactly as often as stated, so a different
LFADS revision fails loudly), and runs ``run_lfads.py`` with the TensorFlow
venv's python four times per case: train, posterior_push_mean,
posterior_sample_and_average, write_model_params (checkpoint_lve, batch 16).

Usage (the TF venv is not a project dependency)::

    python3 -m venv /tmp/tfvenv
    /tmp/tfvenv/bin/pip install tensorflow-cpu==2.15.1 'numpy<2' h5py matplotlib==3.8.4
    python tools/make_tf_reference.py --lfads-git MIRROR.git --rev fd700f0c \\
        --tf-python /tmp/tfvenv/bin/python [--case ctrl1 ...] [--out tests/data/tf_lfads]

Seeds: LFADS sets none, so a small launcher seeds python's ``random``,
numpy's global generator and the TF graph (``tf.set_random_seed``) before
running ``run_lfads.py`` unchanged. TF's multi-threaded CPU kernels may still
reorder float sums, so a rerun need not be bit-identical; tests read every
expectation (steps, shapes, keys) from each case's ``manifest.json``.

Kept per case (the committed total stays small): input files, truth.h5, the
checkpoint-state files, the lowest-validation-error checkpoint the posterior
runs loaded and the latest regular checkpoint, fitlog.csv, hyperparameters
files, model_params, and the posterior files of both splits (few trials per
case with train_to_test_ratio 1 keep them small) except the train-split
sample-and-average ones, which only stitch2 keeps. stitch2 also keeps the two
oldest lve checkpoints that its pointer file lists. truth.h5 does not repeat the
true rates that the input files hold. Posterior files are
re-encoded losslessly (gzip 9 + shuffle). Absolute folder paths that LFADS
wrote into text files are rewritten to ``/lfads_reference/<case>/...``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lfads_runs.io.lfads_input import LfadsInput, write_lfads_input  # noqa: E402
from lfads_runs.synthetic import lorenz  # noqa: E402

LFADS_FILES = ("run_lfads.py", "lfads.py", "utils.py", "distributions.py", "plot_lfads.py")
KINDS = ("train", "posterior_push_mean", "posterior_sample_and_average", "write_model_params")
PATH_PREFIX = "/lfads_reference"

#: (file, old, new, expected count). Only syntax: TF imported via compat.v1,
#: iterators/views listed where Python 3 code indexes or reuses them, the JSON
#: hyperparameters file in text mode, iteritems and np.Inf.
_TF_IMPORT = "import tensorflow as tf\n"
_TF_COMPAT = "import tensorflow.compat.v1 as tf\ntf.disable_v2_behavior()\n"
SOURCE_FIXES: tuple[tuple[str, str, str, int], ...] = (
    *((f, _TF_IMPORT, _TF_COMPAT, 1) for f in LFADS_FILES),
    *(
        ("lfads.py", f"= zip(preds, fns_{w})", f"= list(zip(preds, fns_{w}))", 1)
        for w in ("in_fac_Ws", "in_fac_bs", "out_fac_Ws", "out_fac_bs")
    ),
    ("lfads.py", "example_idxs = range(nexamples) +", "example_idxs = list(range(nexamples)) +", 2),
    (
        "lfads.py",
        "+= zip(names, random_example_idxs)",
        "+= list(zip(names, random_example_idxs))",
        1,
    ),
    ("lfads.py", "all_data_names = datasets.keys()", "all_data_names = list(datasets.keys())", 1),
    ("lfads.py", "var_names = vars_dict.keys()", "var_names = list(vars_dict.keys())", 1),
    ("lfads.py", "np.Inf", "np.inf", 1),
    ("run_lfads.py", "datasets.keys()[0]", "list(datasets.keys())[0]", 1),
    ("run_lfads.py", "datasets.values()[0]", "list(datasets.values())[0]", 1),
    ("utils.py", "open(data_fname,'wb')", "open(data_fname,'w')", 1),
    (
        "utils.py",
        "idxs = range(start_idx, start_idx+l)",
        "idxs = list(range(start_idx, start_idx+l))",
        1,
    ),
    ("plot_lfads.py", "d.iteritems()", "d.items()", 1),
)

#: Seeds the process, then runs run_lfads.py as __main__ with the given argv.
LAUNCHER = """\
import random, runpy, sys
import numpy as np
import tensorflow.compat.v1 as tf
seed = int(sys.argv[1])
random.seed(seed)
np.random.seed(seed)
tf.set_random_seed(seed)
sys.argv = ["run_lfads.py", *sys.argv[2:]]
runpy.run_path("run_lfads.py", run_name="__main__")
"""

COMMON_FLAGS: dict[str, object] = {
    "output_dist": "poisson",
    "allow_gpu_growth": True,
    "device": "cpu:0",
    "max_ckpt_to_keep": 5,
    "max_ckpt_to_keep_lve": 5,
    "learning_rate_init": 0.01,
    "learning_rate_decay_factor": 0.7,
    "learning_rate_n_to_compare": 2,
    "learning_rate_stop": 0.0035,
    "max_grad_norm": 200.0,
    "cell_clip_value": 5.0,
    "keep_prob": 0.95,
    "l2_gen_scale": 500.0,
    "l2_con_scale": 500.0,
    "co_mean_corr_scale": 0.0,
    "kl_ic_weight": 1.0,
    "kl_co_weight": 1.0,
    "kl_start_step": 0,
    "kl_increase_steps": 20,
    "l2_start_step": 0,
    "l2_increase_steps": 20,
    "ext_input_dim": 0,
    "inject_ext_input_to_gen": False,
    "prior_ar_atau": 10.0,
    "do_train_prior_ar_atau": True,
    "prior_ar_nvar": 0.1,
    "do_train_prior_ar_nvar": True,
    "do_feed_factors_to_controller": True,
    "feedback_factors_or_rates": "factors",
    "co_prior_var_scale": 0.1,
    "num_steps_for_gen_ic": 4294967295,
    "ic_prior_var_min": 0.1,
    "ic_prior_var_scale": 0.1,
    "ic_prior_var_max": 0.1,
    "ic_post_var_min": 0.0001,
    "cell_weight_scale": 1.0,
    "gen_cell_input_weight_scale": 1.0,
    "gen_cell_rec_weight_scale": 1.0,
    "do_train_readin": True,
    "batch_size": 16,
}

_CTRL = {"co_dim": 2, "ci_enc_dim": 10, "con_dim": 12, "controller_input_lag": 1}
_SMALL = {"factors_dim": 5, "ic_enc_dim": 12, "ic_dim": 8, "gen_dim": 14}

#: The cases: data recipe (README of the shared fixtures) and the model flags.
CASES: dict[str, dict] = {
    "stitch2": {
        "description": "two stitched sessions with alignment matrices, no controller",
        "seed": 1101,
        "n_conditions": 17,
        "datasets": [("dataset001", 2, 20), ("dataset002", 2, 23)],
        "alignment": True,
        "variant": None,
        # the two oldest lve checkpoints the pointer lists: tests dump from older ones
        "keep_lve_history": 2,
        # tests read both splits of both posterior kinds of one case
        "keep_train_sample_and_average": True,
        "flags": {
            # 4 steps per epoch: compare over more epochs before decaying the learning rate
            "learning_rate_n_to_compare": 6,
            "factors_dim": 6,
            "ic_enc_dim": 16,
            "ic_dim": 16,
            "gen_dim": 16,
            "co_dim": 0,
            "controller_input_lag": 1,
            "do_causal_controller": False,
        },
    },
    "ctrl1": {
        "description": "one session, controller with the AR(1) prior",
        "seed": 1202,
        "n_conditions": 18,
        "datasets": [("dataset001", 2, 22)],
        "alignment": False,
        "variant": None,
        "flags": {**_SMALL, **_CTRL, "do_causal_controller": False},
    },
    "gauss1": {
        "description": "Gaussian output distribution, one controller output",
        "seed": 1505,
        "n_conditions": 18,
        "datasets": [("dataset001", 2, 10)],
        "alignment": False,
        "variant": {"kind": "gauss", "gain": 2.0, "noise_sd": 0.5},
        "flags": {
            **_SMALL,
            "output_dist": "gaussian",
            "co_dim": 1,
            "ci_enc_dim": 8,
            "con_dim": 10,
            "controller_input_lag": 1,
            "do_causal_controller": False,
        },
    },
    "extin1": {
        "description": "external input (a pulse) injected into the generator",
        "seed": 1606,
        "n_conditions": 18,
        "datasets": [("dataset001", 2, 12)],
        "alignment": False,
        "variant": {"kind": "extin", "pulse_lo": 5, "pulse_hi": 39, "tau_bins": 4.0},
        "flags": {
            **_SMALL,
            "ext_input_dim": 1,
            "inject_ext_input_to_gen": True,
            "co_dim": 2,
            "ci_enc_dim": 8,
            "con_dim": 10,
            "controller_input_lag": 1,
            "do_causal_controller": False,
        },
    },
}

T_BINS, BIN_MS, MEAN_RATE_HZ = 50, 10, 20.0
TRAIN_TO_TEST_RATIO = 1


class ReferenceError(RuntimeError):
    """A step of making a reference case failed (the message says which)."""


# ---------------------------------------------------------------- source


def read_lfads_source(src: Path | None, git_dir: Path | None, rev: str) -> dict[str, str]:
    """The five LFADS files, from a folder or from ``git show REV:research/lfads/FILE``."""
    out = {}
    for name in LFADS_FILES:
        if src is not None:
            out[name] = (src / name).read_text()
        else:
            cmd = ["git", f"--git-dir={git_dir}", "show", f"{rev}:research/lfads/{name}"]
            res = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if res.returncode:
                raise ReferenceError(f"{' '.join(cmd)}: {res.stderr.strip()}")
            out[name] = res.stdout
    return out


def patch_source(files: dict[str, str]) -> dict[str, str]:
    """Apply ``SOURCE_FIXES``; each fix must occur exactly as often as stated."""
    files = dict(files)
    for name, old, new, count in SOURCE_FIXES:
        found = files[name].count(old)
        if found != count:
            raise ReferenceError(
                f"{name}: expected {count} x {old!r}, found {found} (different LFADS revision?)"
            )
        files[name] = files[name].replace(old, new)
    return files


# ---------------------------------------------------------------- data


def _split(n_trials: int) -> tuple[np.ndarray, np.ndarray]:
    """0-based train and valid trials: every (ratio + 1)-th trial from the first is validation.

    lfads_runs.data.binning.split_trials with TRAIN_TO_TEST_RATIO; 1 keeps both
    splits just above batch_size with few trials, so the files stay small.
    """
    idx = np.arange(n_trials)
    valid = idx % (TRAIN_TO_TEST_RATIO + 1) == 0
    return idx[~valid], idx[valid]


def _alignment(
    cond_avgs: list[np.ndarray], factors_dim: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """regressGlobalPCs, written from its description (independent of lfads_runs.data.alignment).

    ``cond_avgs``: per dataset conditions x time x neurons. Returns per dataset
    (alignment_matrix_cxf, alignment_bias_c).
    """
    mats = [a.reshape(-1, a.shape[-1]) for a in cond_avgs]  # (C*T) x N, time-major per condition
    means = [m.mean(axis=0) for m in mats]
    stacked = np.concatenate([m - mu for m, mu in zip(mats, means, strict=True)], axis=1)
    _, _, vt = np.linalg.svd(stacked, full_matrices=False)
    coeff = vt[:factors_dim].T
    # MATLAB's pca: the largest-magnitude loading of each component is positive
    big = coeff[np.argmax(np.abs(coeff), axis=0), np.arange(coeff.shape[1])]
    coeff = coeff * np.sign(big)
    scores = stacked @ coeff
    out = []
    for m, mu in zip(mats, means, strict=True):
        w, *_ = np.linalg.lstsq(m - mu, scores, rcond=None)
        out.append((w, mu))
    return out


def write_truth(path: Path, condition_latents: np.ndarray, truth: dict[str, dict]) -> None:
    """truth.h5: condition_latents and one group per dataset (original trial order).

    The true rates are not repeated here: the input file holds them
    (train_truth, valid_truth), which keeps the committed data small.
    """
    with h5py.File(path, "w") as f:
        f["condition_latents"] = condition_latents
        for name, arrays in truth.items():
            g = f.create_group(name)
            for k, v in arrays.items():
                gz = {"compression": "gzip", "compression_opts": 9, "shuffle": True}
                g.create_dataset(k, data=v, **(gz if np.ndim(v) >= 2 else {}))


def make_case_data(case: str, spec: dict, case_dir: Path) -> dict:
    """Write lfadsInput/lfads_<ds>.h5 and truth.h5; return the manifest's data section."""
    rng = np.random.default_rng(spec["seed"])
    names = [d[0] for d in spec["datasets"]]
    data = lorenz(
        n_datasets=len(names),
        n_conditions=spec["n_conditions"],
        trials_per_condition=[d[1] for d in spec["datasets"]],
        n_neurons=[d[2] for d in spec["datasets"]],
        duration_ms=T_BINS * BIN_MS,
        bin_ms=BIN_MS,
        mean_rate_hz=MEAN_RATE_HZ,
        seed=rng,
        names=names,
    )
    variant = spec["variant"] or {}
    inputs, truth = {}, {}
    for ds in data.datasets:
        n_trials, _, n_neu = ds.counts.shape
        rates, observed = ds.true_rates, ds.counts
        extra_truth: dict[str, np.ndarray | float] = {}
        ext = None
        if variant.get("kind") == "gauss":
            noise = rng.standard_normal(rates.shape)
            observed = variant["gain"] * rates + variant["noise_sd"] * noise
            extra_truth = {
                "gain": variant["gain"],
                "noise_sd": variant["noise_sd"],
            }
        elif variant.get("kind") == "extin":
            gain = rng.uniform(1.0, 2.0, n_neu) * np.sign(rng.standard_normal(n_neu))
            pulse0 = rng.integers(variant["pulse_lo"], variant["pulse_hi"] + 1, n_trials)
            t = np.arange(T_BINS)[None, :]
            lag = t - pulse0[:, None]
            drive = np.where(lag >= 0, np.exp(-np.maximum(lag, 0) / variant["tau_bins"]), 0.0)
            ext = np.zeros((n_trials, T_BINS, 1))
            ext[np.arange(n_trials), pulse0, 0] = 1.0
            logr = ds.latents @ ds.readout_W.T + ds.readout_b + drive[:, :, None] * gain
            rates = np.exp(np.clip(logr, -20.0, 20.0))
            observed = rng.poisson(rates).astype(np.int64)
            extra_truth = {
                "ext_input": ext,
                "pulse_bin": (pulse0 + 1).astype(np.float64),
                "ext_drive": drive,
                "ext_gain": gain,
                "tau_bins": variant["tau_bins"],
            }
        tr, va = _split(n_trials)
        inputs[ds.name] = {
            "train_data": observed[tr],
            "valid_data": observed[va],
            "train_truth": rates[tr],
            "valid_truth": rates[va],
            "train_inds": tr + 1.0,
            "valid_inds": va + 1.0,
            "conversion_factor": np.ones(1),
            **({"train_ext_input": ext[tr], "valid_ext_input": ext[va]} if ext is not None else {}),
        }
        truth[ds.name] = {
            "latents": ds.latents,
            "condition_id": ds.condition_id.astype(np.float64),
            "readout_W": ds.readout_W,
            "readout_b": float(ds.readout_b[0]),
            "train_inds": tr + 1.0,
            "valid_inds": va + 1.0,
            **extra_truth,
        }
    if spec["alignment"]:
        conds = np.arange(1, spec["n_conditions"] + 1)
        avgs = []
        for ds in data.datasets:
            avgs.append(np.stack([ds.counts[ds.condition_id == c].mean(axis=0) for c in conds]))
        for ds, (w, b) in zip(
            data.datasets, _alignment(avgs, spec["flags"]["factors_dim"]), strict=True
        ):
            inputs[ds.name]["alignment_matrix_cxf"] = w
            inputs[ds.name]["alignment_bias_c"] = b

    for name, arrays in inputs.items():
        write_lfads_input(case_dir / "lfadsInput" / f"lfads_{name}.h5", LfadsInput(**arrays))
    write_truth(case_dir / "truth.h5", data.condition_latents, truth)
    return {
        "seed": spec["seed"],
        "generator": "lfads_runs.synthetic.lorenz (numpy default_rng), then the variant's draws",
        "rng_order": [
            "Lorenz initial states",
            "per dataset: readout W, Poisson counts",
            *(
                ["Gaussian noise (the Poisson counts are not used)"]
                if variant.get("kind") == "gauss"
                else [
                    "gains, pulse bins (0-based lo..hi), Poisson counts (replacing the plain ones)"
                ]
                if variant.get("kind") == "extin"
                else []
            ),
        ],
        "n_conditions": spec["n_conditions"],
        "datasets": [
            {
                "name": n,
                "repeats_per_condition": r,
                "neurons": k,
                "n_trials": spec["n_conditions"] * r,
                "n_train": len(_split(spec["n_conditions"] * r)[0]),
                "n_valid": len(_split(spec["n_conditions"] * r)[1]),
            }
            for n, r, k in spec["datasets"]
        ],
        "train_to_test_ratio": TRAIN_TO_TEST_RATIO,
        "split": "every (train_to_test_ratio + 1)-th trial from the first is validation",
        "alignment_matrices": spec["alignment"],
        "mean_rate_hz": MEAN_RATE_HZ,
        "bin_ms": BIN_MS,
        "T": T_BINS,
        "variant": spec["variant"],
    }


# ---------------------------------------------------------------- running LFADS


def _flag_args(flags: dict[str, object]) -> list[str]:
    args = []
    for k, v in flags.items():
        v = ("true" if v else "false") if isinstance(v, bool) else v
        args.append(f"--{k}={v}")
    return args


def kind_flags(case_dir: Path, spec: dict, kind: str) -> dict[str, object]:
    flags: dict[str, object] = {
        "data_dir": str(case_dir / "lfadsInput"),
        "data_filename_stem": "lfads",
        "lfads_save_dir": str(case_dir / "lfadsOutput"),
        "kind": kind,
    }
    if kind != "train":
        flags["checkpoint_pb_load_name"] = "checkpoint_lve"
    flags.update(COMMON_FLAGS)
    if kind == "train":
        flags["temporal_spike_jitter_width"] = 0
    flags.update(spec["flags"])
    return flags


def run_kind(
    tf_python: Path, src_dir: Path, seed: int, flags: dict[str, object], log: Path
) -> float:
    t0 = time.monotonic()
    with log.open("a") as fh:
        fh.write(f"\n===== {flags['kind']}\n")
        fh.flush()
        res = subprocess.run(
            [str(tf_python), "launcher.py", str(seed), *_flag_args(flags)],
            cwd=src_dir,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "MPLBACKEND": "Agg"},
            check=False,
        )
    if res.returncode:
        raise ReferenceError(
            f"run_lfads.py --kind={flags['kind']} failed (exit {res.returncode}); see {log}"
        )
    return time.monotonic() - t0


def _versions(tf_python: Path) -> dict[str, str]:
    code = (
        "import json, sys, platform, numpy, h5py, tensorflow as tf, matplotlib;"
        "print(json.dumps({'tensorflow_version': tf.__version__, 'python_version': platform.python_version(),"
        "'numpy_version': numpy.__version__, 'h5py_version': h5py.version.version,"
        "'matplotlib_version': matplotlib.__version__}))"
    )
    out = subprocess.run([str(tf_python), "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- post-processing


def _ckpt_names(state_file: Path) -> tuple[str, list[str]]:
    """(model_checkpoint_path, all_model_checkpoint_paths) file names of a checkpoint-state file."""
    model, every = "", []
    for line in state_file.read_text().splitlines():
        key, _, val = line.partition(":")
        name = Path(val.strip().strip('"')).name
        if key.strip() == "model_checkpoint_path":
            model = name
        elif key.strip() == "all_model_checkpoint_paths":
            every.append(name)
    return model, every


def _reencode(path: Path) -> None:
    """Rewrite an HDF5 file of plain datasets with gzip 9 + shuffle; values checked bit for bit."""
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(path, "r") as src, h5py.File(tmp, "w") as dst:
        for k, d in src.items():
            a = d[()]
            kw = {"compression": "gzip", "compression_opts": 9, "shuffle": True} if a.ndim else {}
            dst.create_dataset(k, data=a, **kw)
    with h5py.File(path, "r") as a, h5py.File(tmp, "r") as b:
        if set(a) != set(b) or any(
            a[k].dtype != b[k].dtype or not np.array_equal(a[k][()], b[k][()], equal_nan=True)
            for k in a
        ):
            raise ReferenceError(f"re-encoding {path} changed its content")
    os.replace(tmp, path)


def postprocess(case: str, spec: dict, work: Path) -> dict:
    out = work / "lfadsOutput"
    shutil.rmtree(out / "lfads_log", ignore_errors=True)
    for f in out.glob("*.meta"):
        f.unlink()
    lve, every_lve = _ckpt_names(out / "checkpoint_lve")
    latest, _ = _ckpt_names(out / "checkpoint")
    keep = {lve, latest, *every_lve[: spec.get("keep_lve_history", 0)]}
    for f in out.glob("lfads_vae*.ckpt-*"):
        if f.name.split(".index")[0].split(".data-")[0] not in keep:
            f.unlink()
    if not spec.get("keep_train_sample_and_average"):
        for f in out.glob("model_runs_*_train_posterior_sample_and_average"):
            f.unlink()
    for f in out.glob("model_runs_*"):
        _reencode(f)
    # absolute temp paths -> a fixed placeholder, in every text file LFADS wrote
    for f in [out / "checkpoint", out / "checkpoint_lve", *out.glob("hyperparameters-*.txt")]:
        f.write_text(f.read_text().replace(str(work), f"{PATH_PREFIX}/{case}"))
    with h5py.File(out / "model_params", "r") as f:
        keys = sorted(f)
    return {
        "lve_checkpoint": lve,
        "lve_step": int(lve.rsplit("-", 1)[1]),
        "lve_history_steps": [int(n.rsplit("-", 1)[1]) for n in every_lve],
        "latest_checkpoint": latest,
        "latest_step": int(latest.rsplit("-", 1)[1]),
        "model_params_keys": len(keys),
        "model_params_non_adam_keys": sum(1 for k in keys if "Adam" not in k),
    }


_EPOCH_LINE = re.compile(
    r"Epoch:(\d+), step:(\d+) \(TRAIN, VALID\): total: (\S+), (\S+)\s+recon: (\S+), (\S+),"
    r"\s+kl: (\S+), (\S+),\s+l2: (\S+),\s+kl weight: (\S+), l2 weight: (\S+)"
)
_EPOCH_FIELDS = (
    "epoch", "step", "total_train", "total_valid", "recon_train", "recon_valid",
    "kl_train", "kl_valid", "l2", "kl_weight", "l2_weight",
)  # fmt: skip


def _fitlog_summary(path: Path, train_log: str) -> dict:
    """Rows of fitlog.csv and the last epoch as LFADS printed it (a source independent of the file)."""
    rows = [r for r in path.read_text().splitlines() if r.strip()]
    printed = _EPOCH_LINE.findall(train_log)
    if not printed:
        raise ReferenceError("no 'Epoch:' line in the training output")
    last = {
        k: (int(v) if k in ("epoch", "step") else float(v))
        for k, v in zip(_EPOCH_FIELDS, printed[-1], strict=True)
    }
    return {"rows": len(rows), "last_printed": last}


def _quality(case_dir: Path, spec: dict) -> dict:
    """Valid-split R2 of the push-mean output against the truth, by plain h5py (for orientation)."""
    out = {}
    for name, *_ in spec["datasets"]:
        with h5py.File(case_dir / "lfadsInput" / f"lfads_{name}.h5", "r") as f:
            truth = f["valid_truth"][()]
        with h5py.File(
            case_dir / "lfadsOutput" / f"model_runs_{name}.h5_valid_posterior_push_mean", "r"
        ) as f:
            params = f["output_dist_params"][()]
        n = truth.shape[-1]
        if (spec["variant"] or {}).get("kind") == "gauss":
            pred, target = params[..., :n], spec["variant"]["gain"] * truth
            out[f"{name}_median_valid_variance"] = float(np.median(params[..., n:]))
        else:
            pred, target = params, truth
        centred = target - target.mean(axis=(0, 1))
        out[f"{name}_valid_r2"] = float(1 - ((pred - target) ** 2).sum() / (centred**2).sum())
    return out


# ---------------------------------------------------------------- main


def make_case(
    case: str, files: dict[str, str], tf_python: Path, out_root: Path, provenance: dict
) -> Path:
    spec = CASES[case]
    out_root.mkdir(parents=True, exist_ok=True)
    # Work outside the repository (linters and tests never see the LFADS copy); a failed
    # case leaves its work folder for inspection, a finished one replaces out_root/case.
    tmp = Path(tempfile.mkdtemp(prefix=f"make_tf_reference_{case}."))
    src_dir, work = tmp / "lfads_src", tmp / case
    src_dir.mkdir()
    for name, text in files.items():
        (src_dir / name).write_text(text)
    (src_dir / "launcher.py").write_text(LAUNCHER)
    data_info = make_case_data(case, spec, work)
    log = Path(tempfile.gettempdir()) / f"make_tf_reference_{case}.log"
    log.write_text("")
    flags, seconds = {}, {}
    for kind in KINDS:
        flags[kind] = kind_flags(work, spec, kind)
        seconds[kind] = round(run_kind(tf_python, src_dir, spec["seed"], flags[kind], log), 1)
        print(f"{case}: {kind} done in {seconds[kind]} s", flush=True)
        if kind == "train":
            train_log = log.read_text()
    ckpt = postprocess(case, spec, work)
    for kind_flags_ in flags.values():
        for k in ("data_dir", "lfads_save_dir"):
            kind_flags_[k] = str(kind_flags_[k]).replace(str(work), f"{PATH_PREFIX}/{case}")
    manifest = {
        "case": case,
        "description": spec["description"],
        **provenance,
        "python_version_data": platform.python_version(),
        "numpy_version_data": np.__version__,
        "h5py_version_data": h5py.version.version,
        "seconds": seconds,
        "train_wall_seconds": seconds["train"],
        "commands_order": list(KINDS),
        "checkpoint_pb_load_name_used": "checkpoint_lve",
        **ckpt,
        "fitlog": _fitlog_summary(work / "lfadsOutput" / "fitlog.csv", train_log),
        "push_mean_quality": _quality(work, spec),
        "synthetic_data": data_info,
        "flags": flags,
        "files": sorted(str(p.relative_to(work)) for p in work.rglob("*") if p.is_file()),
    }
    (work / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=False) + "\n")
    final = out_root / case
    staged = Path(tempfile.mkdtemp(prefix=f".{case}.", dir=out_root))
    shutil.copytree(work, staged / case)
    if final.exists():
        os.replace(final, staged / "old")
    os.replace(staged / case, final)
    shutil.rmtree(staged)
    shutil.rmtree(tmp)
    return final


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--lfads-src", type=Path, help="folder holding research/lfads's five .py files"
    )
    src.add_argument(
        "--lfads-git", type=Path, help="git dir of a tensorflow/models or lfads/models mirror"
    )
    p.add_argument("--rev", default="fd700f0c", help="revision for --lfads-git (default fd700f0c)")
    p.add_argument(
        "--tf-python", type=Path, required=True, help="python of a venv with tensorflow-cpu 2.15"
    )
    p.add_argument("--out", type=Path, default=REPO / "tests" / "data" / "tf_lfads")
    p.add_argument("--case", action="append", choices=sorted(CASES), help="default: every case")
    a = p.parse_args(argv)
    try:
        files = patch_source(read_lfads_source(a.lfads_src, a.lfads_git, a.rev))
        commit = a.rev
        if a.lfads_git is not None:
            commit = subprocess.run(
                ["git", f"--git-dir={a.lfads_git}", "rev-parse", a.rev],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        provenance = {
            **_versions(a.tf_python),
            "lfads_source": "research/lfads of lfads/models (identical to tensorflow/models research/lfads)",
            "lfads_commit": commit,
            "source_changes": [
                f"{f}: {old.strip()!r} -> {new.strip()!r} (x{n})" for f, old, new, n in SOURCE_FIXES
            ],
            "seeding": "launcher: random.seed, numpy.random.seed, tf.set_random_seed (all = the case seed)",
        }
        for case in a.case or list(CASES):
            t0 = time.monotonic()
            path = make_case(case, files, a.tf_python, a.out, provenance)
            print(f"{case}: written to {path} in {time.monotonic() - t0:.0f} s", flush=True)
    except (ReferenceError, OSError, subprocess.CalledProcessError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
