"""``lfads-runs nlb import|export``: NLB tensors to LFADS input, trained rates to a submission."""

from __future__ import annotations

from pathlib import Path

import click

from ..layout import POSTERIOR_KINDS
from ._app import cli, echo_json


@cli.group("nlb")
def nlb() -> None:
    """Neural Latents Benchmark tensors (nlb_tools.make_tensors) in and submissions out."""


@nlb.command("import")
@click.argument("tensors", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--group", default=None, help="Group of the dataset inside TENSORS, if nested.")
@click.option("--name", default="nlb", show_default=True, help="Dataset name: lfads_<name>.h5.")
@click.option(
    "--train-to-test-ratio",
    default=4,
    show_default=True,
    help="Every (ratio+1)-th trial validates.",
)
def nlb_import(tensors: Path, out_dir: Path, group, name: str, train_to_test_ratio: int) -> int:
    """Write OUT_DIR/lfads_<name>.h5 from the training trials of TENSORS (held-in,
    held-out and forward bins); prints the file and the fp_len to train with."""
    from ..data.nlb import read_nlb_tensors, write_nlb_input

    t = read_nlb_tensors(tensors, group)
    path = write_nlb_input(t, out_dir, name=name, train_to_test_ratio=train_to_test_ratio)
    echo_json(
        {
            "input": str(path),
            "heldin": t.n_heldin,
            "heldout": t.n_heldout,
            "bins": t.num_steps,
            "fp_len": t.forward_bins,
        }
    )
    return 0


@nlb.command("export")
@click.argument("tensors", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("data_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("save_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dataset", "dataset_name", required=True, help="Group name, e.g. mc_maze_small.")
@click.option("--group", default=None, help="Group of the dataset inside TENSORS, if nested.")
@click.option("--name", default="nlb", show_default=True, help="Name given to nlb import.")
@click.option(
    "--checkpoint", default="lve", show_default=True, help="lve, latest, a step or a prefix."
)
@click.option(
    "--kind",
    type=click.Choice(POSTERIOR_KINDS),
    default="posterior_sample_and_average",
    show_default=True,
)
@click.option("--samples", type=int, default=None, help="Samples per trial (default batch_size).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True)
def nlb_export(
    tensors, data_dir, save_dir, out, dataset_name, group, name, checkpoint, kind, samples, seed,
    device,
) -> int:  # fmt: skip
    """Write the submission OUT (eval/train rates, held-in/held-out, forward) from the model
    in SAVE_DIR trained on DATA_DIR (made by nlb import from TENSORS)."""
    from ..actions.nlb_export import export_nlb_submission

    path = export_nlb_submission(
        tensors, data_dir, save_dir, out, dataset_name=dataset_name, input_name=name,
        group=group, checkpoint=checkpoint, kind=kind, n_samples=samples, seed=seed,
        device=device,
    )  # fmt: skip
    echo_json({"submission": str(path)})
    return 0
