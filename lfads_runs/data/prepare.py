"""Turning loaded datasets into the input files LFADS reads (run-manager.md §8).

:func:`prepare_datasets` validates, rebins and splits every dataset, builds the
alignment matrices when asked, and writes ``lfads_<ds>.h5`` and
``inputInfo_<ds>.mat`` into one folder (``data_<hash>/<runSpec>/``). It is
idempotent: files already prepared for the same data hash are kept. Everything
is validated before the first file is written, and every file is written
atomically. :func:`link_inputs` makes a run's ``lfadsInput/`` links.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from .. import layout
from .._atomic import atomic_path, file_lock
from .._tempfiles import sweep_stale_temps, temp_link_name
from ..exceptions import ConfigError, DataError
from ..io.input_info import InputInfo, read_input_info_hash, validate_input_info, write_input_info
from ..io.lfads_input import (
    InputSummary,
    LfadsInput,
    read_input_summary,
    validate_lfads_input,
    write_lfads_input,
)
from .alignment import APPROACHES, AlignmentResult, compute_alignment, uses_alignment
from .binning import (
    OUTPUT_DISTS,
    check_split_sizes,
    rebin_dataset,
    rebin_factor,
    split_trials,
    validate_dataset,
)
from .cosmoothing import heldout_from_spec, split_extras
from .dataset import DatasetData

__all__ = [
    "PreparedDataset",
    "PreparedData",
    "DatasetStatus",
    "prepare_datasets",
    "prepared_status",
    "link_inputs",
    "input_file_names",
]


def input_file_names(dataset: str) -> tuple[str, str]:
    """``(lfads_<ds>.h5, inputInfo_<ds>.mat)``: the two files prepared per dataset."""
    return layout.lfads_input_name(dataset), layout.input_info_name(dataset)


@attrs.frozen
class DatasetStatus:
    """State of one dataset's prepared files in a folder.

    ``state`` is ``"ok"`` (both files, prepared for this data hash),
    ``"missing"`` (neither file), ``"partial"`` (one file, or an unreadable
    input file) or ``"hash_mismatch"`` (``inputInfo`` holds another hash).
    """

    name: str
    state: str
    lfads_input: Path
    input_info: Path
    stored_hash: str | None = None


@attrs.frozen(eq=False)
class PreparedDataset:
    """One dataset's prepared files."""

    name: str
    lfads_input: Path
    input_info: Path
    summary: InputSummary
    written: bool  #: False when up-to-date files were kept


@attrs.frozen(eq=False)
class PreparedData:
    """What :func:`prepare_datasets` produced."""

    out_dir: Path
    data_hash: str
    datasets: tuple[PreparedDataset, ...]
    alignment: AlignmentResult | None  #: None when not used or nothing was (re)computed

    @property
    def written(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.datasets if d.written)

    @property
    def kept(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.datasets if not d.written)

    def __getitem__(self, name: str) -> PreparedDataset:
        for d in self.datasets:
            if d.name == name:
                return d
        raise KeyError(name)


def _plain_hash(data_hash: str) -> str:
    """``paramInputDataHash`` holds the bare hash, without the ``data_`` folder prefix."""
    return str(data_hash).removeprefix(layout.DATA_PREFIX)


def prepared_status(
    out_dir: str | os.PathLike, names: Iterable[str], data_hash: str
) -> dict[str, DatasetStatus]:
    """Which datasets already have up-to-date prepared files in ``out_dir``.

    Cheap (reads only the stored hash and the input file's shapes), so callers
    can skip loading the recordings when everything is ``"ok"``.
    """
    out_dir = Path(out_dir)
    want = _plain_hash(data_hash)
    out = {}
    for name in names:
        h5_name, info_name = input_file_names(name)
        h5, info = out_dir / h5_name, out_dir / info_name
        stored = None
        if not h5.exists() and not info.exists():
            state = "missing"
        elif not (h5.exists() and info.exists()):
            state = "partial"
        else:
            stored = read_input_info_hash(info)
            if stored is None:
                state = "partial"
            elif stored != want:
                state = "hash_mismatch"
            else:
                try:
                    read_input_summary(h5)
                    state = "ok"
                except DataError:
                    state = "partial"
        out[name] = DatasetStatus(name, state, h5, info, stored)
    return out


def _check_args(
    output_dist: str,
    alignment_approach: str,
    factors_dim: int,
    batch_size: int,
    train_to_test_ratio: int,
) -> None:
    if output_dist not in OUTPUT_DISTS:
        msg = f"output_dist must be one of {', '.join(OUTPUT_DISTS)}, got {output_dist!r}"
        raise ConfigError(msg)
    if alignment_approach not in APPROACHES:
        msg = (
            f"alignment_approach must be one of {', '.join(APPROACHES)}, got {alignment_approach!r}"
        )
        raise ConfigError(msg)
    if int(factors_dim) < 1:
        msg = f"factors_dim must be at least 1, got {factors_dim}"
        raise ConfigError(msg)
    if int(batch_size) < 1:
        msg = f"batch_size must be at least 1, got {batch_size}"
        raise ConfigError(msg)
    split_trials(1, train_to_test_ratio)  # validates the ratio


def _counts_for_file(counts: np.ndarray, output_dist: str) -> np.ndarray:
    if output_dist == "poisson":
        return counts.astype(np.int64, copy=False)  # validated: whole, non-negative
    return counts.astype(np.float64, copy=False)


def prepare_datasets(
    datasets: Sequence[tuple[str, DatasetData]],
    *,
    spike_bin_ms: float,
    train_to_test_ratio: int,
    batch_size: int,
    output_dist: str,
    factors_dim: int,
    use_alignment_matrix: bool,
    use_single_dataset_alignment_matrix: bool,
    alignment_approach: str = "regressGlobalPCs",
    alignment_extra_args: Mapping[str, Any] | Sequence[Any] | None = None,
    data_hash: str,
    out_dir: str | os.PathLike,
    regenerate: bool = False,
    ext_input_dim: int | None = None,
    alignment_data: Sequence[tuple[str, DatasetData]] | None = None,
    extra_inputs: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    heldout: Mapping[str, Any] | None = None,
) -> PreparedData:
    """Write ``lfads_<ds>.h5`` and ``inputInfo_<ds>.mat`` for every dataset into ``out_dir``.

    Parameters
    ----------
    datasets : sequence of (name, DatasetData)
        The run's datasets, in the run's order, at their original resolution.
    spike_bin_ms : float
        Bin width of the LFADS input (``spikeBinMs``); an integer multiple of
        each dataset's bin width.
    train_to_test_ratio : int
        Every ``(ratio + 1)``-th trial from the first is validation.
    batch_size : int
        ``c_batch_size``: each split must hold strictly more trials.
    output_dist : {'poisson', 'gaussian'}
        Poisson counts are stored as int64 (and must be whole, non-negative);
        Gaussian data as float64.
    factors_dim : int
        ``c_factors_dim`` (columns of the alignment matrices).
    use_alignment_matrix : bool
        Build alignment matrices when there are several datasets.
    use_single_dataset_alignment_matrix : bool
        Build one when there is a single dataset (the caller passes False for
        legacy collections, version < 20171107, as MATLAB did).
    alignment_approach : {'regressGlobalPCs', 'ridgeRegressGlobalPCs'}
    alignment_extra_args : mapping or name/value sequence, optional
    data_hash : str
        The run's data hash (with or without the ``data_`` prefix); stored in
        each ``inputInfo`` and compared on later calls.
    out_dir : path
        ``data_<hash>/<runSpec>/`` (from :mod:`lfads_runs.layout`).
    regenerate : bool
        Rewrite every file even when up to date, and overwrite files prepared
        for another data hash.
    ext_input_dim : int, optional
        ``c_ext_input_dim``; when given, every dataset must have exactly this
        many external inputs.
    alignment_data : sequence of (name, DatasetData), optional
        Other trials of the same datasets (same names and neurons) to compute the
        alignment matrices from (MATLAB ``usesDifferentDataForAlignment``).
    extra_inputs : mapping, optional
        ``{dataset: {key: array}}``: extra arrays written into ``lfads_<ds>.h5``
        (MATLAB ``generateExtraLFADSInputsByDataset``).

    Returns
    -------
    PreparedData

    Raises
    ------
    DataError
        Bad data (named by dataset and reason), or files in ``out_dir``
        prepared for another data hash (without ``regenerate``). Nothing is
        written when any dataset fails.
    ConfigError
        Invalid parameters or duplicate dataset names.
    """
    out_dir = Path(out_dir)
    names = [n for n, _ in datasets]
    if not names:
        msg = "no datasets to prepare"
        raise ConfigError(msg)
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        msg = f"duplicate dataset names: {', '.join(dup)}"
        raise ConfigError(msg)
    _check_args(output_dist, alignment_approach, factors_dim, batch_size, train_to_test_ratio)
    want_hash = _plain_hash(data_hash)

    out_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(out_dir / layout.PREPARE_LOCK):
        status = prepared_status(out_dir, names, want_hash)
        if not regenerate:
            clash = [s for s in status.values() if s.state == "hash_mismatch"]
            if clash:
                lines = ", ".join(f"{s.input_info.name} has {s.stored_hash}" for s in clash)
                msg = (
                    f"{out_dir}: files were prepared for another data hash ({lines}; "
                    f"expected {want_hash}); pass regenerate=True (lfads-runs prepare "
                    "--regenerate) to overwrite them"
                )
                raise DataError(msg)
        todo = [
            n
            for n in names
            if regenerate
            or status[n].state != "ok"
            or split_changed(status[n].lfads_input, (heldout or {}).get(n), n)
        ]
        alignment = None
        if todo:
            plans, alignment = _plan(
                datasets,
                todo=set(todo),
                spike_bin_ms=spike_bin_ms,
                train_to_test_ratio=train_to_test_ratio,
                batch_size=batch_size,
                output_dist=output_dist,
                factors_dim=factors_dim,
                use_alignment_matrix=use_alignment_matrix,
                use_single=use_single_dataset_alignment_matrix,
                approach=alignment_approach,
                extra_args=alignment_extra_args,
                data_hash=want_hash,
                out_dir=out_dir,
                ext_input_dim=ext_input_dim,
                alignment_data=alignment_data,
                extra_inputs=extra_inputs or {},
                heldout=heldout or {},
            )
            for name in todo:  # everything validated: now write
                h5, info_path, inp, info = plans[name]
                write_lfads_input(h5, inp)
                write_input_info(info_path, info)  # last: its hash marks the dataset complete
        prepared = []
        for name in names:
            s = status[name]
            prepared.append(
                PreparedDataset(
                    name=name,
                    lfads_input=s.lfads_input,
                    input_info=s.input_info,
                    summary=read_input_summary(s.lfads_input),
                    written=name in todo,
                )
            )
    return PreparedData(
        out_dir=out_dir, data_hash=want_hash, datasets=tuple(prepared), alignment=alignment
    )


def _plan(
    datasets: Sequence[tuple[str, DatasetData]],
    *,
    todo: set[str],
    spike_bin_ms: float,
    train_to_test_ratio: int,
    batch_size: int,
    output_dist: str,
    factors_dim: int,
    use_alignment_matrix: bool,
    use_single: bool,
    approach: str,
    extra_args: Mapping[str, Any] | Sequence[Any] | None,
    data_hash: str,
    out_dir: Path,
    ext_input_dim: int | None,
    alignment_data: Sequence[tuple[str, DatasetData]] | None = None,
    extra_inputs: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    heldout: Mapping[str, Any] | None = None,
) -> tuple[dict[str, tuple[Path, Path, LfadsInput, InputInfo]], AlignmentResult | None]:
    """Validate, rebin, split and align everything in memory; write nothing."""
    binned: list[tuple[str, DatasetData]] = []
    rebin = {}
    for name, data in datasets:
        if not isinstance(data, DatasetData):
            msg = f"dataset {name!r}: expected DatasetData, got {type(data).__name__}"
            raise ConfigError(msg)
        if data.n_neurons == 0:
            msg = f"dataset {name!r} ({data.source}) has no neurons"
            raise DataError(msg)
        validate_dataset(data, name=name, output_dist=output_dist)
        rebin[name] = rebin_factor(data.bin_ms, spike_bin_ms, name=name)
        binned.append((name, rebin_dataset(data, spike_bin_ms, name=name)))
        check_split_sizes(data.n_trials, train_to_test_ratio, batch_size, name=name)
        if ext_input_dim is not None and data.n_ext_inputs != ext_input_dim:
            msg = (
                f"dataset {name!r} has {data.n_ext_inputs} external inputs but "
                f"c_ext_input_dim is {ext_input_dim}"
            )
            raise DataError(msg)
    steps = {n: d.n_time for n, d in binned}
    if len(set(steps.values())) > 1:
        listing = ", ".join(f"{n}: {t}" for n, t in steps.items())
        msg = (
            f"all datasets of a run must have the same number of time bins at "
            f"spike_bin_ms = {spike_bin_ms:g} ms; got {listing}"
        )
        raise DataError(msg)
    exts = {n: d.n_ext_inputs for n, d in binned}
    if len(set(exts.values())) > 1:
        msg = f"all datasets of a run must have the same number of external inputs; got {exts}"
        raise DataError(msg)

    alignment = None
    if uses_alignment(
        len(binned),
        use_alignment_matrix=use_alignment_matrix,
        use_single_dataset_alignment_matrix=use_single,
    ):
        source = binned
        if alignment_data is not None:
            source = _alignment_source(alignment_data, dict(binned), spike_bin_ms, output_dist)
        alignment = compute_alignment(
            source, factors_dim=int(factors_dim), approach=approach, extra_args=extra_args
        )

    plans = {}
    originals = dict(datasets)
    for name, b in binned:
        if name not in todo:
            continue
        orig = originals[name]
        train, valid = split_trials(b.n_trials, train_to_test_ratio)
        tr, va = train - 1, valid - 1
        where = f"dataset {name}: heldout_neurons"
        spec = (heldout or {}).get(name)
        if spec is None and orig.heldout_neurons is not None:  # the loader's split
            spec = orig.heldout_neurons.tolist()
        out_idx = heldout_from_spec(spec, b.counts.shape[2], where)
        extras = split_extras(b.counts.shape[2], b.counts.shape[1], heldout=out_idx, where=where)
        has_extra = b.true_rates is not None or b.external_inputs is not None
        counts = _counts_for_file(b.counts, output_dist)
        inp = LfadsInput(
            train_data=counts[tr],
            valid_data=counts[va],
            train_truth=None if b.true_rates is None else b.true_rates[tr],
            valid_truth=None if b.true_rates is None else b.true_rates[va],
            train_ext_input=None if b.external_inputs is None else b.external_inputs[tr],
            valid_ext_input=None if b.external_inputs is None else b.external_inputs[va],
            alignment_matrix_cxf=None if alignment is None else alignment.matrices[name],
            alignment_bias_c=None if alignment is None else alignment.biases[name],
            train_inds=train.astype(np.float64),
            valid_inds=valid.astype(np.float64),
            conversion_factor=np.array([1.0 / rebin[name]]) if has_extra else None,
            extras={**extras, **(extra_inputs or {}).get(name, {})},
        )
        info = InputInfo(
            train_inds=train,
            valid_inds=valid,
            data_hash=data_hash,
            time_ms=orig.time_vector_ms,
            bin_ms=orig.bin_ms,
            condition_id=orig.condition_id,
            counts=orig.counts,
            true_rates=orig.true_rates,
            external_inputs=orig.external_inputs,
        )
        h5_name, info_name = input_file_names(name)
        h5, info_path = out_dir / h5_name, out_dir / info_name
        validate_lfads_input(h5, inp)
        validate_input_info(info_path, info)
        plans[name] = (h5, info_path, inp, info)
    return plans, alignment


def _alignment_source(
    alignment_data: Sequence[tuple[str, DatasetData]],
    exported: Mapping[str, DatasetData],
    spike_bin_ms: float,
    output_dist: str,
) -> list[tuple[str, DatasetData]]:
    """The alignment trials, checked and rebinned like the exported ones."""
    names = [n for n, _ in alignment_data]
    if sorted(names) != sorted(exported):
        msg = f"alignment data cover datasets {names}, but the run exports {list(exported)}"
        raise DataError(msg)
    out = []
    for name, data in alignment_data:
        if not isinstance(data, DatasetData):
            msg = f"alignment data of {name!r}: expected DatasetData, got {type(data).__name__}"
            raise ConfigError(msg)
        validate_dataset(data, name=name, output_dist=output_dist)
        if data.n_neurons != exported[name].n_neurons:
            msg = (
                f"dataset {name!r}: the alignment data have {data.n_neurons} neurons, the "
                f"exported data {exported[name].n_neurons}; they must be the same neurons"
            )
            raise DataError(msg)
        out.append((name, rebin_dataset(data, spike_bin_ms, name=name)))
    by_name = dict(out)
    return [(n, by_name[n]) for n in exported]  # the run's dataset order


def split_changed(h5: Path, spec: Any, name: str) -> bool:
    """Whether an up-to-date input file holds another held-out split than ``spec`` asks for.

    The split is not part of the data hash (MATLAB has none), so a changed
    ``heldout_neurons`` regenerates the files instead of leaving stale ones.
    Without ``spec`` the loader may have supplied the split: the files are kept.
    """
    from ..io.split_keys import read_heldin

    if spec is None:
        return False
    n = read_input_summary(h5).n_neurons
    want = heldout_from_spec(spec, n, f"dataset {name}: heldout_neurons")
    stored = read_heldin(h5)
    if stored is None:
        return want.size > 0
    return not np.array_equal(np.setdiff1d(np.arange(n), stored), want)


def _same_link(dst: Path, target: str) -> bool:
    return dst.is_symlink() and os.readlink(dst) == target


def _copy_needed(src: Path, dst: Path) -> bool:
    if not dst.exists() or dst.is_symlink():
        return True
    a, b = src.stat(), dst.stat()
    return a.st_size != b.st_size or a.st_mtime_ns > b.st_mtime_ns


def link_inputs(
    src_dir: str | os.PathLike,
    dst_dir: str | os.PathLike,
    names: Iterable[str],
    *,
    regenerate: bool = False,
) -> dict[str, Path]:
    """Make ``dst_dir/<name>`` relative symlinks to ``src_dir/<name>`` (``ln -sfn``).

    Correct links are kept; wrong links or files are replaced atomically.
    Where the filesystem refuses symbolic links, the files are copied (and
    copied again when the source is newer or ``regenerate`` is set).

    Parameters
    ----------
    src_dir : path
        Folder of the prepared files (``data_<hash>/<runSpec>``).
    dst_dir : path
        The run's ``lfadsInput/`` folder.
    names : iterable of str
        File names, e.g. from :func:`input_file_names`.

    Returns
    -------
    dict
        File name -> link (or copy) path.

    Raises
    ------
    DataError
        A source file does not exist.
    """
    src_dir, dst_dir = Path(src_dir), Path(dst_dir)
    dst_dir.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in names:
        src = src_dir / name
        if not src.is_file():
            msg = f"cannot link {name}: {src} does not exist (prepare the data first)"
            raise DataError(msg)
        dst = dst_dir / name
        target = os.path.relpath(src, dst_dir)
        out[name] = dst
        if _same_link(dst, target) and not regenerate:
            continue
        sweep_stale_temps(dst)
        tmp = temp_link_name(dst)
        try:
            os.symlink(target, tmp)
        except OSError:
            if regenerate or _copy_needed(src, dst):
                with atomic_path(dst) as t:
                    shutil.copyfile(src, t)
            continue
        os.replace(tmp, dst)
    return out
