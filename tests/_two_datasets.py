"""A two-dataset Lorenz collection for the bad-input, reliability and kill -9 tests."""

from __future__ import annotations

import hashlib
import os
import shutil
import textwrap
from pathlib import Path

from lfads_runs.data.synthetic import lorenz, write_lorenz_datasets

BASE = textwrap.dedent(
    """\
    name: bad
    root: ./runs
    datasets:
      path: ./data
      items:
        - {name: ds1, file: ds1.h5}
        - {name: ds2, file: ds2.h5}
    run_specs:
      - {name: both, datasets: [ds1, ds2]}
    params:
      - {c_factors_dim: 3, c_co_dim: 0, c_gen_dim: 8, c_ic_enc_dim: 8, c_ic_dim: 4, c_batch_size: 5}
    """
)


def write_datasets(folder: Path) -> Path:
    """``ds1.h5`` (6 neurons) and ``ds2.h5`` (5 neurons): 2 conditions x 20 trials of 60 ms."""
    d = lorenz(
        n_datasets=2,
        n_conditions=2,
        trials_per_condition=20,
        n_neurons=[6, 5],
        duration_ms=60,
        bin_ms=1,
        seed=3,
        names=["ds1", "ds2"],
    )
    write_lorenz_datasets(d, folder)
    return folder


def tree(tmp: Path, datasets: Path, config: str = BASE) -> Path:
    """A copy of ``datasets`` in ``tmp/data`` and ``config`` as ``tmp/config.yaml``."""
    shutil.copytree(datasets, tmp / "data")
    (tmp / "config.yaml").write_text(config)
    return tmp / "config.yaml"


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with what it is: a file's SHA-256, a link's target, 'dir'."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "link:" + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def train_one_run(root: Path, datasets: Path) -> Path:
    """``root`` with one trained run of ds1 (21 epochs, seed 1, 3 checkpoints kept), its
    model_params and posterior files, trained in this process."""
    from lfads_runs import RunCollection

    config = BASE.replace(
        "c_batch_size: 5}",
        "c_batch_size: 5, c_max_epochs: 21, num_samples_posterior: 2, "
        "c_learning_rate_n_to_compare: 100}",
    ).replace("[ds1, ds2]", "[ds1]")
    tree(root, datasets, config)
    rc = RunCollection.from_yaml(root / "config.yaml")
    assert rc.train(executor="debug", threads=1, quiet=True, seed=1).n_done == 1
    return root


def the_run(tmp: Path):
    """The run of the tree under ``tmp``."""
    from lfads_runs import RunCollection

    return RunCollection.from_yaml(tmp / "config.yaml").find_runs("both", 1)
