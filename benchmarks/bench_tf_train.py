"""Training speed of the original TensorFlow LFADS on bench_train.py's data and configurations.

The TensorFlow side of the "ratio against TF LFADS" numbers: run it right before or after
``bench_train.py`` on the same quiet machine. It needs a TensorFlow venv (not a project
dependency) and the original LFADS source, patched at run time by
``tools/make_tf_reference.py`` (its code is never committed here)::

    python3 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu==2.15.1 'numpy<2' h5py matplotlib
    python benchmarks/bench_tf_train.py --tf-python /tmp/tfvenv/bin/python \\
        --lfads-git MIRROR.git --rev fd700f0c [--epochs 4] [--configs no_controller,controller]

Prints lines in bench_train.py's format::

    stitch_no_controller tf: 20.9 steps/s (48.0 ms/step)
    stitch_no_controller tf epoch: 2.05 s (24 train + 7 valid batches)

A step is one ``session.run`` of LFADS's training op (forward, backward, clipping, Adam) on
a real batch, timed inside ``run_lfads.py --kind=train``; the median over all steps after the
first epoch is reported. An epoch is the wall time between the starts of consecutive training
epochs (training, validation, fit-log line, checkpoints), median after the first.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tools"), str(HERE.parent)]

from bench_train import hyperparameters, write_inputs  # noqa: E402
from make_tf_reference import patch_source, read_lfads_source  # noqa: E402

# Runs inside the TF venv: time the training op's session.run calls and each epoch's start,
# stop after the requested number of epochs, print the timings as one JSON line.
_TIMER = """\
import json, random, runpy, sys, time
import numpy as np
import tensorflow.compat.v1 as tf
import lfads

epochs = int(sys.argv[1])
random.seed(0); np.random.seed(0); tf.set_random_seed(0)
steps, starts = [], []
_run = tf.Session.run

def timed_run(self, fetches, *a, **k):
    t0 = time.perf_counter()
    out = _run(self, fetches, *a, **k)
    if isinstance(fetches, list) and len(fetches) == 7 and len(starts) > 1:
        steps.append(time.perf_counter() - t0)  # train_epoch's op list ends with train_op
    return out

class Done(Exception):
    pass

_train_epoch = lfads.LFADS.train_epoch

def train_epoch(self, *a, **k):
    starts.append(time.perf_counter())
    if len(starts) > epochs + 1:
        raise Done
    return _train_epoch(self, *a, **k)

tf.Session.run = timed_run
lfads.LFADS.train_epoch = train_epoch
sys.argv = ["run_lfads.py", *sys.argv[2:]]
try:
    runpy.run_path("run_lfads.py", run_name="__main__")
except Done:
    pass
ep = [b - a for a, b in zip(starts[1:-1], starts[2:])]
print("TIMINGS " + json.dumps({"steps": steps, "epochs": ep}))
"""


def tf_flags(hps, data_dir: Path, save_dir: Path) -> list[str]:
    """run_lfads.py flags for our Hyperparameters (the same names), bools as true/false."""
    flags = {
        k: v
        for k, v in hps.as_dict().items()
        if v is not None and k not in ("max_epochs", "max_train_seconds")
    }
    flags.update(
        kind="train",
        data_dir=str(data_dir),
        data_filename_stem="lfads",
        lfads_save_dir=str(save_dir),
        device="cpu:0",
    )
    return [
        f"--{k}={('true' if v else 'false') if isinstance(v, bool) else v}"
        for k, v in flags.items()
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tf-python", required=True, type=Path)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--lfads-src", type=Path, help="folder with run_lfads.py, lfads.py, ...")
    src.add_argument("--lfads-git", type=Path, help="git dir of tensorflow/models or lfads/models")
    ap.add_argument("--rev", default="fd700f0c")
    ap.add_argument("--epochs", type=int, default=4, help="timed epochs (after a first one)")
    ap.add_argument("--configs", default="no_controller,controller")
    args = ap.parse_args(argv)

    files = patch_source(read_lfads_source(args.lfads_src, args.lfads_git, args.rev))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src_dir = tmp / "lfads"
        src_dir.mkdir()
        for name, text in files.items():
            (src_dir / name).write_text(text)
        (src_dir / "timer.py").write_text(_TIMER)
        data_dir = tmp / "lfadsInput"
        write_inputs(data_dir)
        version = subprocess.run(
            [str(args.tf_python), "-c", "import tensorflow as tf; print(tf.__version__)"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        print(f"# tensorflow {version}, {os.cpu_count()} CPUs", file=sys.stderr)
        for config in args.configs.split(","):
            hps = hyperparameters(config == "controller")
            save = tmp / f"out_{config}"
            res = subprocess.run(
                [str(args.tf_python), "timer.py", str(args.epochs)] + tf_flags(hps, data_dir, save),
                cwd=src_dir,
                capture_output=True,
                text=True,
                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "MPLBACKEND": "Agg"},
                check=False,
            )
            line = [ln for ln in res.stdout.splitlines() if ln.startswith("TIMINGS ")]
            if res.returncode or not line:
                sys.stderr.write(res.stdout[-3000:] + res.stderr[-3000:])
                print(f"stitch_{config} tf: failed (exit {res.returncode})")
                return 1
            t = json.loads(line[0][len("TIMINGS ") :])
            step = statistics.median(t["steps"])
            print(f"stitch_{config} tf: {1 / step:.1f} steps/s ({step * 1e3:.1f} ms/step)")
            print(
                f"stitch_{config} tf epoch: {statistics.median(t['epochs']):.2f} s "
                "(24 train + 7 valid batches)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
