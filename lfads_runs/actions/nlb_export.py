"""An NLB submission file from a model trained on :func:`~lfads_runs.data.nlb.write_nlb_input`
inputs (needs the torch extra).

Every training and evaluation trial of the NLB tensor file goes through the
trained model; evaluation trials carry only held-in spikes, which is all the
encoders read. Rates are expected counts per bin, as NLB scores them.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..exceptions import DataError

__all__ = ["export_nlb_submission"]


def export_nlb_submission(
    nlb_file: str | os.PathLike,
    data_dir: str | os.PathLike,
    save_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    dataset_name: str,
    input_name: str = "nlb",
    group: str | None = None,
    checkpoint: str = "lve",
    kind: str = "posterior_sample_and_average",
    n_samples: int | None = None,
    seed: int = 0,
    device: str = "cpu",
) -> Path:
    """Write ``out`` (``{dataset_name}/eval_rates_heldin``, ...) and return its path.

    Parameters
    ----------
    nlb_file, group
        The tensors the inputs were made from.
    data_dir, save_dir
        The run's ``lfadsInput`` and ``lfadsOutput`` folders.
    dataset_name
        Group name in the submission, e.g. ``mc_maze_small``.
    input_name
        Dataset name given to :func:`~lfads_runs.data.nlb.write_nlb_input`.

    Raises
    ------
    DataError
        The trained model does not fit the tensors, or ``out`` exists.
    CheckpointError
        No checkpoint to load.
    """
    from ..data.nlb import read_nlb_tensors, submission_arrays
    from ..dump import spec_from_output_dir
    from ..engine.posterior import infer, load_model, resolve_checkpoint
    from ..io.nlb_files import write_nlb_submission
    from ..layout import lfads_dataset_name

    out = Path(out)
    if out.exists():
        raise DataError(f"{out} exists; remove it or choose another submission file name")
    tensors = read_nlb_tensors(nlb_file, group)
    spec = spec_from_output_dir(save_dir, input_dir=data_dir)
    name = lfads_dataset_name(input_name)
    ds = spec.dataset(name)
    want_in = tuple(range(tensors.n_heldin))
    if ds.n_neurons != tensors.n_heldin + tensors.n_heldout or ds.heldin != want_in:
        raise DataError(
            f"the model of {save_dir} reads {ds.n_encoded} of {ds.n_neurons} neurons; the NLB "
            f"tensors of {nlb_file} have {tensors.n_heldin} held-in and {tensors.n_heldout} "
            "held-out neurons"
        )
    T = tensors.num_steps + tensors.forward_bins
    if spec.num_steps != T or spec.hps.fp_len != tensors.forward_bins:
        raise DataError(
            f"the model of {save_dir} has {spec.num_steps} bins with fp_len = "
            f"{spec.hps.fp_len}; the NLB tensors have {tensors.num_steps} + "
            f"{tensors.forward_bins} forward bins"
        )
    model = load_model(resolve_checkpoint(save_dir, checkpoint), spec, device=device)
    opts = dict(dataset=name, kind=kind, n_samples=n_samples, seed=seed, device=device)
    train = infer(model, spec, tensors.train_counts(), **opts)["output_dist_params"]
    evals = infer(model, spec, tensors.eval_counts(), **opts)["output_dist_params"]
    write_nlb_submission(out, {dataset_name: submission_arrays(tensors, train, evals)})
    return out
