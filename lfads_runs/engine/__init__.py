"""The LFADS engine: TensorFlow LFADS re-implemented in PyTorch (optional extra ``torch``).

Same parameterisation and variable names as the original (spec: lfads-model.md),
so checkpoints and ``model_params`` files are interchangeable with TensorFlow's.
Import this package lazily: the management layer never imports torch at module level.

Main entry points
-----------------
train(data_dir, save_dir, hps, *, device="cpu", seed=None, progress=None, log=None)
sample_posterior(data_dir, save_dir, hps, kind=..., checkpoint="lve", *, n_samples=None, ...)
prior_sample(data_dir, save_dir, hps, checkpoint="lve", ...)
load_model(source, spec, *, device="cpu") -> LfadsModel
infer(weights, spec, counts, *, dataset, kind="posterior_push_mean", ...) -> dict of arrays
``python -m lfads_runs.engine --kind=... --data_dir=... --lfads_save_dir=...`` (run_lfads.py flags)
"""

from __future__ import annotations

from .._optional import require

require("torch", "the LFADS engine")

from .model import KINDS, LfadsModel, PassConfig, PassResult  # noqa: E402
from .posterior import (  # noqa: E402
    POSTERIOR_KINDS,
    infer,
    load_model,
    posterior_arrays,
    prior_sample,
    resolve_checkpoint,
    sample_posterior,
)
from .training import TrainResult, train  # noqa: E402

__all__ = [
    "KINDS",
    "POSTERIOR_KINDS",
    "LfadsModel",
    "PassConfig",
    "PassResult",
    "TrainResult",
    "infer",
    "load_model",
    "posterior_arrays",
    "prior_sample",
    "resolve_checkpoint",
    "sample_posterior",
    "train",
]
