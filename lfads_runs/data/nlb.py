"""Neural Latents Benchmark tensors as LFADS input, and rates back as a submission.

``nlb_tools.make_tensors`` writes ``train_spikes_heldin`` [N, T, D_in],
``train_spikes_heldout`` [N, T, D_out], optionally
``train_spikes_heldin_forward`` / ``train_spikes_heldout_forward`` [N, T_fp, ·],
and ``eval_spikes_heldin`` [M, T, D_in]. :func:`write_nlb_input` turns the
training trials into one ``lfads_<name>.h5``: neurons held-in then held-out,
bins encoded then forward, the split stored as
:mod:`~lfads_runs.data.cosmoothing` keys, every ``(ratio + 1)``-th trial
validation as ``prepare`` splits. Train with ``fp_len`` = the forward bins.
:func:`nlb_dataset` is the same as a YAML dataset loader
(``loader: "lfads_runs.data.nlb:nlb_dataset"``): its data carry the held-out split.
:func:`submission_arrays` cuts rates over those trials back into NLB's keys.
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs
import numpy as np

from ..exceptions import DataError
from .binning import split_trials
from .cosmoothing import split_extras

__all__ = [
    "NlbTensors",
    "read_nlb_tensors",
    "write_nlb_input",
    "submission_arrays",
    "nlb_dataset",
]

REQUIRED_KEYS = ("train_spikes_heldin", "train_spikes_heldout", "eval_spikes_heldin")
FORWARD_KEYS = ("train_spikes_heldin_forward", "train_spikes_heldout_forward")


@attrs.frozen(eq=False)
class NlbTensors:
    """The spike tensors of one NLB dataset (counts as int64)."""

    train_heldin: np.ndarray
    train_heldout: np.ndarray
    eval_heldin: np.ndarray
    train_heldin_forward: np.ndarray | None = None
    train_heldout_forward: np.ndarray | None = None
    source: str = ""

    @property
    def n_heldin(self) -> int:
        return int(self.train_heldin.shape[2])

    @property
    def n_heldout(self) -> int:
        return int(self.train_heldout.shape[2])

    @property
    def num_steps(self) -> int:
        """Bins of the encoded window (without the forward bins)."""
        return int(self.train_heldin.shape[1])

    @property
    def forward_bins(self) -> int:
        return 0 if self.train_heldin_forward is None else int(self.train_heldin_forward.shape[1])

    def train_counts(self) -> np.ndarray:
        """Training trials [N, T + T_fp, D_in + D_out]: held-in then held-out neurons."""
        x = np.concatenate([self.train_heldin, self.train_heldout], axis=2)
        if self.forward_bins:
            fwd = np.concatenate([self.train_heldin_forward, self.train_heldout_forward], axis=2)
            x = np.concatenate([x, fwd], axis=1)
        return x

    def eval_counts(self) -> np.ndarray:
        """Evaluation trials in the same layout; the unknown held-out and forward bins are 0.

        The encoders read only held-in neurons in the encoded bins, so the zeros
        never reach the model.
        """
        M = self.eval_heldin.shape[0]
        x = np.zeros((M, self.num_steps + self.forward_bins, self.n_heldin + self.n_heldout))
        x[:, : self.num_steps, : self.n_heldin] = self.eval_heldin
        return x.astype(np.int64)


def _counts(a: np.ndarray, key: str, where: str) -> np.ndarray:
    if a.ndim != 3:
        raise DataError(f"{where}: {key} must be trials x time x neurons, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number):
        raise DataError(f"{where}: {key} must hold spike counts, got dtype {a.dtype}")
    af = a.astype(np.float64)
    if not np.isfinite(af).all():
        raise DataError(f"{where}: {key} holds NaN or infinite values")
    if (af < 0).any() or not np.equal(np.mod(af, 1), 0).all():
        raise DataError(f"{where}: {key} must hold non-negative whole spike counts")
    return af.astype(np.int64)


def read_nlb_tensors(path: str | os.PathLike, group: str | None = None) -> NlbTensors:
    """Read and check the tensors of ``path`` (``group``: the dataset's group, if nested).

    Raises
    ------
    MissingOutputError
        No such file.
    DataError
        A required key is missing (the message lists what the file has), or
        shapes disagree: trials between held-in and held-out, bins, neurons
        between training and evaluation, or only one forward key present.
    """
    from ..io.nlb_files import read_nlb_arrays

    where = str(path) + (f" (group {group})" if group else "")
    arrays = read_nlb_arrays(path, group)
    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        raise DataError(
            f"{where}: missing NLB key(s) {', '.join(missing)}; the file has "
            f"{', '.join(sorted(arrays)) or 'no arrays'}"
        )
    have_fwd = [k in arrays for k in FORWARD_KEYS]
    if any(have_fwd) and not all(have_fwd):
        raise DataError(f"{where}: forward prediction needs both {' and '.join(FORWARD_KEYS)}")
    a = {k: _counts(arrays[k], k, where) for k in (*REQUIRED_KEYS, *FORWARD_KEYS) if k in arrays}
    hin, hout, ev = a["train_spikes_heldin"], a["train_spikes_heldout"], a["eval_spikes_heldin"]

    def mismatch(k1, s1, k2, s2, what):
        raise DataError(f"{where}: {k1} {s1} and {k2} {s2} differ in {what}")

    if hin.shape[:2] != hout.shape[:2]:
        mismatch(
            "train_spikes_heldin", hin.shape, "train_spikes_heldout", hout.shape, "trials/bins"
        )
    if ev.shape[1:] != hin.shape[1:]:
        mismatch("eval_spikes_heldin", ev.shape, "train_spikes_heldin", hin.shape, "bins/neurons")
    if hin.shape[2] == 0 or hout.shape[2] == 0 or hin.shape[1] < 1:
        raise DataError(f"{where}: needs held-in and held-out neurons and at least one bin")
    fi = fo = None
    if all(have_fwd):
        fi, fo = a[FORWARD_KEYS[0]], a[FORWARD_KEYS[1]]
        if fi.shape[0] != hin.shape[0] or fi.shape[2] != hin.shape[2]:
            mismatch(FORWARD_KEYS[0], fi.shape, "train_spikes_heldin", hin.shape, "trials/neurons")
        if fo.shape[0] != hout.shape[0] or fo.shape[2] != hout.shape[2]:
            mismatch(
                FORWARD_KEYS[1], fo.shape, "train_spikes_heldout", hout.shape, "trials/neurons"
            )
        if fi.shape[1] != fo.shape[1]:
            mismatch(FORWARD_KEYS[0], fi.shape, FORWARD_KEYS[1], fo.shape, "forward bins")
    return NlbTensors(hin, hout, ev, fi, fo, source=where)


def write_nlb_input(
    tensors: NlbTensors,
    out_dir: str | os.PathLike,
    *,
    name: str = "nlb",
    train_to_test_ratio: int = 4,
) -> Path:
    """Write ``<out_dir>/lfads_<name>.h5`` from the training trials; returns its path.

    Raises
    ------
    DataError
        The file exists, or a split would be empty.
    """
    from ..io.lfads_input import LfadsInput, write_lfads_input
    from ..layout import lfads_input_name

    path = Path(out_dir) / lfads_input_name(name)
    if path.exists():
        raise DataError(f"{path} exists; remove it or write into another folder")
    counts = tensors.train_counts()
    train, valid = split_trials(counts.shape[0], train_to_test_ratio)
    if train.size == 0 or valid.size == 0:
        raise DataError(f"{tensors.source}: {counts.shape[0]} training trials are too few to split")
    extras = split_extras(
        counts.shape[2],
        counts.shape[1],
        heldout=np.arange(tensors.n_heldin, counts.shape[2]),
        forward_bins=tensors.forward_bins,
        where=tensors.source,
    )
    inp = LfadsInput(
        train_data=counts[train - 1],
        valid_data=counts[valid - 1],
        train_inds=train.astype(np.float64),
        valid_inds=valid.astype(np.float64),
        extras=extras,
    )
    write_lfads_input(path, inp)
    return path


def submission_arrays(
    tensors: NlbTensors, train_rates: np.ndarray, eval_rates: np.ndarray
) -> dict[str, np.ndarray]:
    """NLB submission keys from rates over all training and evaluation trials.

    ``train_rates`` [N, T + T_fp, D] in the order of the tensor file's trials,
    ``eval_rates`` [M, T + T_fp, D]; counts per bin, as NLB expects.

    Raises
    ------
    DataError
        The rates do not have the tensors' shapes.
    """
    T, din = tensors.num_steps, tensors.n_heldin
    shape_tr = (tensors.train_heldin.shape[0], T + tensors.forward_bins, din + tensors.n_heldout)
    shape_ev = (tensors.eval_heldin.shape[0], *shape_tr[1:])
    if train_rates.shape != shape_tr or eval_rates.shape != shape_ev:
        raise DataError(
            f"rates {train_rates.shape} / {eval_rates.shape} do not fit the NLB tensors, "
            f"expected {shape_tr} / {shape_ev}"
        )
    out = {
        "train_rates_heldin": train_rates[:, :T, :din],
        "train_rates_heldout": train_rates[:, :T, din:],
        "eval_rates_heldin": eval_rates[:, :T, :din],
        "eval_rates_heldout": eval_rates[:, :T, din:],
    }
    if tensors.forward_bins:
        out["eval_rates_heldin_forward"] = eval_rates[:, T:, :din]
        out["eval_rates_heldout_forward"] = eval_rates[:, T:, din:]
    return out


def nlb_dataset(path: str | os.PathLike, *, group: str | None = None, bin_ms: float = 5.0):
    """The training trials of an NLB tensor file as a dataset (YAML ``loader``).

    Neurons are held-in then held-out (the held-out ones are the data's
    ``heldout_neurons``), bins are the encoded window then the forward bins:
    set ``c_fp_len`` to the forward bins at ``spikeBinMs``. NLB bins are 5 ms.

    Raises
    ------
    DataError
        As :func:`read_nlb_tensors`.
    """
    from .dataset import DatasetData

    t = read_nlb_tensors(path, group)
    return DatasetData(
        t.train_counts(),
        bin_ms=bin_ms,
        heldout_neurons=np.arange(t.n_heldin, t.n_heldin + t.n_heldout),
        source=t.source,
    )
