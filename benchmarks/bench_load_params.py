"""Benchmark: loading trained parameters of many runs, and dumping one TF checkpoint.

Creates N run folders (default 1000) whose ``lfadsOutput/model_params`` has the
size of the Lorenz stitching demo (3 datasets of 35, 26 and 35 neurons,
factors 8, generator 64, IC encoder 64, ic_dim 64, no controller; every tensor
of a checkpoint including the Adam slots, written by our writer), then prints

* the time to load all of them through ``load_trained_params`` with validation
  against the model (ModelSpec) versus a plain h5py read of the same datasets,
  and the ratio (target <= 1.3);
* the time to dump one TF checkpoint of that size to ``model_params``
  (TensorBundle read with CRC checks + HDF5 write; target <= 50 ms), with the
  CRC32C backend in use and with the numpy fallback.

Usage::

    .venv/bin/python benchmarks/bench_load_params.py [--n 1000] [--dir DIR] [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from lfads_runs.dump import dump_model_params, load_trained_params
from lfads_runs.hparams import Hyperparameters
from lfads_runs.io import crc32c as crc_module
from lfads_runs.io.checkpoint_state import write_checkpoint_state
from lfads_runs.io.model_params import write_model_params
from lfads_runs.io.tensorbundle import write_bundle
from lfads_runs.model_spec import DatasetSpec, ModelSpec

NAMES = ["dataset001", "dataset002", "dataset003"]


def lorenz_spec() -> ModelSpec:
    hps = Hyperparameters(
        factors_dim=8,
        gen_dim=64,
        ic_enc_dim=64,
        ic_dim=64,
        co_dim=0,
        batch_size=150,
        learning_rate_stop=1e-3,
    )
    datasets = [DatasetSpec(n, d, True) for n, d in zip(NAMES, (35, 26, 35), strict=True)]
    return ModelSpec.build(hps, datasets, 500)


def random_checkpoint(spec: ModelSpec, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for name, shape in spec.checkpoint_shapes().items():
        if name == "LFADS/global_step":
            out[name] = np.int64(12345)
        else:
            out[name] = (0.1 * rng.standard_normal(shape)).astype(np.float32)
    return out


def make_runs(root: Path, n: int, tensors: dict[str, np.ndarray]) -> list[Path]:
    outs = []
    for i in range(n):
        out = root / f"run_{i:04d}" / "lfadsOutput"
        out.mkdir(parents=True, exist_ok=True)
        write_model_params(out / "model_params", tensors)
        outs.append(out)
    return outs


def plain_read(outs: list[Path], keys: list[str]) -> None:
    for out in outs:
        with h5py.File(out / "model_params", "r") as f:
            {k: f[k][()] for k in keys}


def ours(outs: list[Path], spec: ModelSpec) -> None:
    for out in outs:
        load_trained_params(out, NAMES, spec)


def timed(fn, *args) -> float:
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def bench_dump(root: Path, tensors: dict[str, np.ndarray], spec: ModelSpec, reps: int) -> None:
    out = root / "dump_run" / "lfadsOutput"
    out.mkdir(parents=True, exist_ok=True)
    prefix = out / "lfads_vae_lve.ckpt-12345"
    write_bundle(prefix, tensors)
    write_checkpoint_state(out, "checkpoint_lve", prefix.name, [prefix.name])
    size = sum(p.stat().st_size for p in out.glob("lfads_vae_lve.ckpt-12345.*"))
    print(f"\nTF checkpoint: {len(tensors)} tensors, {size / 1e3:.0f} kB (index + data)")
    backends = [(crc_module.BACKEND, crc_module._impl)]
    if crc_module.BACKEND != "numpy":
        backends.append(("numpy", crc_module.crc32c_numpy))
    saved = crc_module._impl
    try:
        for name, impl in backends:
            crc_module._impl = impl
            for label, kw in (("no spec", {}), ("with spec check", {"spec": spec})):
                dump_model_params(out, **kw)  # warm up
                times = [timed(lambda kw=kw: dump_model_params(out, **kw)) for _ in range(reps)]
                print(
                    f"dump one checkpoint (crc32c backend {name:>13}, {label:>15}): "
                    f"median {1e3 * statistics.median(times):6.1f} ms, "
                    f"min {1e3 * min(times):6.1f} ms  (target <= 50 ms)"
                )
    finally:
        crc_module._impl = saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="number of run folders")
    ap.add_argument("--dir", type=Path, default=None, help="where to create them (default: temp)")
    ap.add_argument("--repeat", type=int, default=3, help="timed passes of each loader")
    ap.add_argument("--dump-reps", type=int, default=30, help="timed dumps")
    args = ap.parse_args()

    spec = lorenz_spec()
    tensors = random_checkpoint(spec)
    keys = [k for k in (v.hdf5_key for v in spec.variables)]
    keys += ["LFADS_global_step:0", "LFADS_learning_rate:0"]
    root = Path(tempfile.mkdtemp(prefix="bench_params_", dir=args.dir))
    try:
        t = time.perf_counter()
        outs = make_runs(root, args.n, tensors)
        size = (outs[0] / "model_params").stat().st_size
        print(
            f"{args.n} run folders under {root}: model_params {size / 1e3:.0f} kB, "
            f"{len(tensors)} datasets ({len(keys)} loaded), written in "
            f"{time.perf_counter() - t:.1f} s"
        )
        plain_read(outs, keys)  # warm the page cache and the import of both paths
        ours(outs[:10], spec)
        t_plain, t_ours = [], []
        for _ in range(args.repeat):
            t_plain.append(timed(plain_read, outs, keys))
            t_ours.append(timed(ours, outs, spec))
        bp, bo = min(t_plain), min(t_ours)
        print(
            f"plain h5py read of the same {len(keys)} datasets: {bp:.3f} s ({1e3 * bp / args.n:.2f} ms/run)"
        )
        print(
            f"load_trained_params with validation:       {bo:.3f} s ({1e3 * bo / args.n:.2f} ms/run)"
        )
        print(f"ratio ours / plain: {bo / bp:.2f}  (target <= 1.3; best of {args.repeat} passes)")
        bench_dump(root, tensors, spec, args.dump_reps)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
