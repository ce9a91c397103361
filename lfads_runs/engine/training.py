"""Training as run_lfads.py ``--kind=train`` does it (spec §7), resumable exactly.

Per epoch: shuffled batches of all datasets (one Adam update each), a
regular checkpoint after the training pass of epochs 0, 10, 20, ...,
a validation pass (keep_prob 1, sampling on), the lowest-validation-error
checkpoint when eligible, one ``fitlog.csv`` line, then the learning-rate
rule on the training cost. Training stops when the learning rate falls below
``learning_rate_stop``, or at our optional ``max_epochs`` / ``max_train_seconds``.

Resuming: the newest checkpoint written by this engine (regular or LVE) is
restored with its sidecar, the fit log is cut back to its length at that
point, and the epoch continues from the recorded phase; on the CPU with a
seed the result equals an uninterrupted run. A TensorFlow checkpoint
(no sidecar) restores weights, Adam state, learning rate and step, and
starts the histories afresh as TensorFlow does (spec §7.9).
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import attrs
import numpy as np
import torch

from .. import layout as L
from .. import progress as _progress
from ..exceptions import CheckpointError, ConfigError, LfadsRunsWarning, RunFailedError
from ..hparams import Hyperparameters
from ..io.checkpoints import find_checkpoint, list_checkpoints
from ..io.fitlog import FITLOG_VALUES
from ..io.hyperparameters_file import RunFlags, write_hyperparameters_file
from ..io.tensorbundle import checkpoint_exists
from ._ext import tune_allocator
from ._rng import NoiseSource, stream_description
from .ckpt import (
    CheckpointSet,
    ResumeState,
    checkpoint_tensors,
    read_checkpoint_arrays,
    read_sidecar,
    remove_checkpoint,
    save_checkpoint,
    sidecar_path,
    split_checkpoint_arrays,
)
from .data import (
    EngineDataset,
    alignment_of,
    build_spec,
    epoch_batches,
    jitter_spikes,
    load_datasets,
)
from .masking import ElementMasks
from .model import LfadsModel, PassConfig, poisson_log_norm
from .optim import TFAdam, clip_by_global_norm, flat_gradients
from .threads import ThreadGovernor
from .valid_metrics import ValidMetrics, smooth

__all__ = ["train", "TrainResult", "resolve_device", "new_seed"]

_PHASES = ("after_train", "after_valid", "end_of_epoch")


@attrs.frozen
class TrainResult:
    """What a call to :func:`train` did."""

    save_dir: Path
    epochs: int  #: epochs completed in total (across resumes)
    steps: int  #: global step at the end
    stop_reason: str  #: "learning_rate", "max_epochs", "max_train_seconds" or "already_finished"
    lowest_valid_cost: float | None
    lve_checkpoint: Path | None  #: newest lowest-validation-error checkpoint prefix
    last_checkpoint: Path | None
    seconds: float  #: wall time of this call
    resumed_from: Path | None
    device: str
    seed: int
    #: Selection metrics of the last validation pass (lfads_runs.engine.valid_metrics).
    metrics: dict[str, float] = attrs.field(factory=dict)
    #: The selection metrics of every epoch this call trained, in order.
    history: list[dict[str, float]] = attrs.field(factory=list)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """ "cpu" (default), "cuda[:n]" or "auto" (CUDA when available)."""
    if device is None:
        return torch.device("cpu")
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available")
    return dev


def new_seed() -> int:
    return int(np.random.SeedSequence().entropy % (2**63))


class _Log:
    def __init__(self, log: Callable[[str], Any] | TextIO | None) -> None:
        self._log = log

    def __call__(self, msg: str) -> None:
        if self._log is None:
            _progress.write(msg)  # above the epoch's bar, when there is one
        elif callable(self._log):
            self._log(msg)
        else:
            self._log.write(msg + "\n")
            self._log.flush()


class _Trainer:
    def __init__(
        self,
        data_dir,
        save_dir,
        hps: Hyperparameters,
        *,
        device,
        seed,
        progress,
        log,
        flags: RunFlags,
        stem: str,
        load_name: str,
    ) -> None:
        self.hps = hps
        self.save_dir = Path(save_dir)
        self.device = resolve_device(device)
        self.log = _Log(log)
        self.progress = progress
        self.flags = flags
        self.load_name = load_name
        self.rescale_learning_rate = False
        self.reseed: int | None = None
        self.datasets: dict[str, EngineDataset] = load_datasets(data_dir, hps, stem=stem)
        self.spec = build_spec(hps, self.datasets)
        self.model = LfadsModel(self.spec, device=self.device)
        self.opt = TFAdam(self.model.params.updated())
        self.masks = ElementMasks(hps, self.spec, self.datasets, self.device)
        self.metrics = ValidMetrics(self.spec, self.datasets, self.masks.sv_keep, self.device)
        # TF LFADS's fit-log lines stay byte for byte unless an AutoLFADS feature is on.
        self.fitlog_metrics = hps.autolfads_on or self.metrics.has_heldout
        self.seed = new_seed() if seed is None else int(seed)
        self.noise = NoiseSource(self.seed)
        self.governor = ThreadGovernor.for_device(self.device, log=self.log)
        tune_allocator()
        self.nrng = np.random.default_rng(self.seed)
        self.step = 0
        self.lr = np.float32(hps.learning_rate_init)
        self.state = ResumeState(epoch=0, phase="end_of_epoch", seed=self.seed)
        self.resumed_from: Path | None = None
        self.fitlog = self.save_dir / L.fitlog_file_name(hps.csv_log)
        self.regular = CheckpointSet(self.save_dir, L.CHECKPOINT_POINTER, hps.max_ckpt_to_keep)
        self.lve = CheckpointSet(self.save_dir, L.CHECKPOINT_LVE_POINTER, hps.max_ckpt_to_keep)
        self.last_checkpoint: Path | None = None
        self.last_metrics: dict[str, float] = {}
        self.history: list[dict[str, float]] = []
        self._tensors = {
            name: {split: self._split_tensors(ds, split) for split in ("train", "valid")}
            for name, ds in self.datasets.items()
        }

    def _split_tensors(self, ds: EngineDataset, split: str):
        """Data and external inputs time-major [T, N, .], and the Poisson per-trial
        log-normaliser, on the device.

        Time-major because the model works time-major: a batch gathered along dim 1 and
        handed over as its [B, T, .] transpose needs no copy inside the model.
        """
        data = torch.as_tensor(ds.data(split), dtype=torch.float32, device=self.device)
        log_norm = poisson_log_norm(data) if self.hps.output_dist == "poisson" else None
        ext = ds.ext(split)
        ext = None if ext is None else torch.as_tensor(ext, dtype=torch.float32, device=self.device)
        return _time_major(data), _time_major(ext), log_norm

    # ------------------------------------------------------------- restore
    def restore(self) -> None:
        self.save_dir.mkdir(parents=True, exist_ok=True)
        if not self.hps.do_reset_learning_rate and self._restore_newest_intact():
            return
        prefix = self._tf_checkpoint()
        if prefix is not None:
            self._restore_tf(prefix)
            return
        self.model.initialize(torch.Generator().manual_seed(self.seed), alignment_of(self.datasets))

    def _own_checkpoints(self) -> list[Path]:
        """This engine's complete checkpoints on disk (sidecar present), newest first.

        The pointer files name the newest; the older ones kept are where a resume
        falls back to when the newest is corrupt.
        """
        return [p for p in reversed(list_checkpoints(self.save_dir)) if sidecar_path(p).is_file()]

    def _restore_newest_intact(self) -> bool:
        """Resume from the newest readable checkpoint of ours; False when there is none.

        Candidates of one step are ordered by the phase their sidecar records (an LVE
        checkpoint written after the regular one of the same step wins). A corrupt
        checkpoint is skipped with a warning naming it; the resume then discards it with
        everything else after the step it continues from.
        """
        readable, corrupt = [], []
        for prefix in self._own_checkpoints():
            try:
                side = read_sidecar(prefix)
                if side is None:
                    continue
                step = int(read_checkpoint_arrays_step(prefix))
            except (CheckpointError, OSError) as exc:
                corrupt.append((prefix, exc))
                continue
            state, rng = side
            rank = 1 if L.is_lve_checkpoint(prefix) else 0
            readable.append(((step, _PHASES.index(state.phase), rank), prefix, state, rng))
        readable.sort(key=lambda t: t[0], reverse=True)
        for _, prefix, state, rng in readable:
            try:
                arrays = read_checkpoint_arrays(prefix)
            except (CheckpointError, OSError) as exc:
                corrupt.append((prefix, exc))
                continue
            if corrupt:
                names = ", ".join(p.name for p, _ in corrupt)
                msg = (
                    f"corrupt checkpoint(s) {names} ({corrupt[0][1]}); resuming from {prefix.name}"
                )
                warnings.warn(msg, LfadsRunsWarning, stacklevel=3)
                self.log(f"Warning: {msg}")
            self._restore_own(prefix, state, rng, arrays)
            return True
        if corrupt:
            raise CheckpointError(
                f"{self.save_dir}: every checkpoint of this run is corrupt, e.g. "
                f"{corrupt[0][0].name}: {corrupt[0][1]}; remove them to train from scratch"
            )
        return False

    def _tf_checkpoint(self) -> Path | None:
        """The checkpoint ``--checkpoint_pb_load_name`` chooses, to start from (None: none)."""
        return find_checkpoint(self.save_dir, self.load_name)[0]

    def _load_tensors(self, prefix: Path, arrays: dict[str, np.ndarray] | None = None) -> None:
        if arrays is None:
            arrays = read_checkpoint_arrays(prefix)
        variables, slots, scalars = split_checkpoint_arrays(
            self.spec, arrays, source=f"checkpoint {prefix}"
        )
        self.model.params.load_arrays(variables, source=f"checkpoint {prefix}")
        missing = self.opt.load_slots(slots)
        if missing:
            warnings.warn(
                f"checkpoint {prefix} has no Adam slots for {len(missing)} variable(s) "
                f"(e.g. {missing[0]}); they start at zero",
                LfadsRunsWarning,
                stacklevel=3,
            )
        self.step = int(scalars.get("global_step", 0))
        self.lr = np.float32(scalars.get("learning_rate", self.hps.learning_rate_init))
        self.opt.beta1_power = np.float32(scalars.get("beta1_power", 0.9 ** (self.step + 1)))
        self.opt.beta2_power = np.float32(scalars.get("beta2_power", 0.999 ** (self.step + 1)))
        self.resumed_from = prefix

    def _warn_stream_change(self, prefix: Path, saved: str | None) -> None:
        """Say so when the checkpoint's random stream is not the one this machine draws."""
        if saved is None or saved == self.noise.kind:
            return
        warnings.warn(
            f"checkpoint {prefix} was written with the {stream_description(saved)}, "
            f"this machine draws from the {stream_description(self.noise.kind)}: the resumed "
            "run continues with different random numbers than an uninterrupted run would",
            LfadsRunsWarning,
            stacklevel=4,
        )

    def _restore_own(
        self, prefix: Path, state: ResumeState, rng: np.ndarray, arrays: dict[str, np.ndarray]
    ) -> None:
        self._load_tensors(prefix, arrays)
        self.state = state
        self.seed = state.seed
        self.noise = NoiseSource(self.seed)
        self._warn_stream_change(prefix, state.noise.get("kind"))
        self.noise.set_state(state.noise, rng)
        self.nrng = np.random.default_rng()
        self.nrng.bit_generator.state = state.numpy_rng
        self.regular.kept = list(state.regular_kept)
        self.lve.kept = list(state.lve_kept)
        # Drop what the interrupted run wrote after this point; it will be redone.
        self._discard_after(self.step, prefix)
        if self.fitlog.exists() and self.fitlog.stat().st_size > state.fitlog_size:
            with open(self.fitlog, "r+b") as fh:
                fh.truncate(state.fitlog_size)
        for cs in (self.regular, self.lve):
            cs.write_pointer()
        self.log(f"Resuming from {prefix.name} (epoch {state.epoch}, {state.phase}).")

    def _discard_after(self, step: int, keep: Path) -> None:
        for prefix in list_checkpoints(self.save_dir):
            if prefix == keep:
                continue
            # ours, even if its sidecar is torn
            if L.checkpoint_step(prefix) > step and sidecar_path(prefix).is_file():
                remove_checkpoint(prefix)
        for cs in (self.regular, self.lve):
            cs.kept = [n for n in cs.kept if checkpoint_exists(self.save_dir / n)]

    def _restore_tf(self, prefix: Path) -> None:
        self._load_tensors(prefix)
        if self.hps.do_reset_learning_rate:
            self.lr = np.float32(self.hps.learning_rate_init)
        self.state = ResumeState(epoch=0, phase="end_of_epoch", seed=self.seed)
        self.log(f"Restored {prefix.name} (step {self.step}); histories start afresh.")

    def _rescale_learning_rate(self, prefix: Path) -> None:
        """Scale the resumed rate by how much ``learning_rate_init`` changed since the
        checkpoint was trained: the rate of the newest hyperparameters file older than
        it (a file of the checkpoint's own step belongs to a later call)."""
        from ..io.hyperparameters_file import newest_hyperparameters_file, read_hyperparameters

        older = newest_hyperparameters_file(self.save_dir, before_step=L.checkpoint_step(prefix))
        if older is None:
            return
        before = float(read_hyperparameters(older).learning_rate_init)
        now = float(self.hps.learning_rate_init)
        if before > 0 and now != before:
            self.lr = np.float32(self.lr * np.float32(now / before))
            self.log(
                f"Learning rate scaled by {now / before:.4g} (learning_rate_init "
                f"{before:g} -> {now:g}): {float(self.lr):g}."
            )

    # ----------------------------------------------------------------- save
    def _save(self, lve: bool, phase: str, epoch: int, values: dict[str, float]) -> Path:
        name = L.checkpoint_prefix(self.step, lve=lve, name=self.hps.checkpoint_name)
        prefix = self.save_dir / name
        cs = self.lve if lve else self.regular
        kept_after = [n for n in cs.kept if n != name] + [name]
        if cs.max_to_keep > 0:
            kept_after = kept_after[-cs.max_to_keep :]
        st = self.state
        noise_info, noise_rng = self.noise.state()
        state = ResumeState(
            epoch=epoch,
            phase=phase,
            train_costs=list(st.train_costs),
            valid_costs=list(st.valid_costs),
            lowest_valid_cost=st.lowest_valid_cost,
            elapsed_seconds=self._elapsed(),
            seed=self.seed,
            fitlog_size=self.fitlog.stat().st_size if self.fitlog.exists() else 0,
            epoch_values=dict(values),
            regular_kept=kept_after if not lve else list(self.regular.kept),
            lve_kept=kept_after if lve else list(self.lve.kept),
            finished=st.finished,
            numpy_rng=self.nrng.bit_generator.state,
            noise=noise_info,
            smoothed=dict(st.smoothed),
        )
        slots = {
            n: (m.detach().cpu().numpy(), v.detach().cpu().numpy())
            for n, (m, v) in self.opt.slots().items()
        }
        tensors = checkpoint_tensors(
            self.model.params.to_arrays(),
            slots,
            step=self.step,
            learning_rate=self.lr,
            beta1_power=self.opt.beta1_power,
            beta2_power=self.opt.beta2_power,
        )
        save_checkpoint(prefix, tensors, state, noise_rng)
        cs.add(name)
        self.last_checkpoint = prefix
        return prefix

    # ----------------------------------------------------------------- passes
    def _batch(self, name: str, split: str, idx: np.ndarray):
        """Data, external inputs and (Poisson) per-trial log-normaliser of one batch."""
        data, ext, log_norm = self._tensors[name][split]
        w = self.hps.temporal_spike_jitter_width
        tidx = torch.as_tensor(idx, device=self.device)
        if w > 0 and self.hps.output_dist == "poisson":
            counts = self.datasets[name].data(split)[idx]
            x = torch.as_tensor(
                jitter_spikes(counts, w, self.nrng), dtype=torch.float32, device=self.device
            )
            ln = None  # jitter keeps each trial's counts, not their per-bin pattern
        else:
            x = data.index_select(1, tidx).transpose(0, 1)
            ln = None if log_norm is None else log_norm.index_select(0, tidx)
        e = None if ext is None else ext.index_select(1, tidx).transpose(0, 1)
        return x, e, ln

    def _sizes(self, split: str) -> dict[str, int]:
        return {n: int(ds.data(split).shape[0]) for n, ds in self.datasets.items()}

    def train_step(self, name: str, idx: np.ndarray, cfg: PassConfig):
        """One Adam update on one batch (spec §4); returns the pass result."""
        self.governor.tick()
        x, e, ln = self._batch(name, "train", idx)
        scale, mask = self.masks.for_batch(name, "train", idx, x, self.noise)
        res = self.model(
            x,
            name,
            cfg,
            ext=e,
            step=self.step,
            generator=self.noise,
            log_norm=ln,
            input_scale=scale,
            recon_mask=mask,
        )
        params = self.opt.params
        grads = torch.autograd.grad(res.cost, params, allow_unused=True)
        # Other datasets' read-in/read-out get zero gradients, as in TensorFlow.
        flat = flat_gradients(grads, params)
        clip_by_global_norm([flat], self.hps.max_grad_norm)
        self.opt.step(flat, self.lr)
        self.step += 1
        return res

    def train_pass(self, epoch: int) -> dict[str, float]:
        hps = self.hps
        cfg = PassConfig.for_kind("train", hps.keep_prob)
        batches = epoch_batches(self._sizes("train"), hps.batch_size, self.nrng)
        rows = []
        with _progress.bar(
            len(batches), f"epoch {epoch}", "batch", progress=self.progress
        ) as epoch_bar:
            if self.state.valid_costs:
                epoch_bar.set_postfix_str(f"valid cost {self.state.valid_costs[-1]:.2f}")
            for name, idx in batches:
                res = self.train_step(name, idx, cfg)
                rows.append(
                    torch.stack(
                        [res.cost.detach(), res.recon.detach(), res.kl.detach(), res.l2.detach()]
                    )
                )
                last_w = (res.kl_weight, res.l2_weight)
                epoch_bar.update(1)
        vals = torch.stack(rows).double().cpu().numpy()
        if not np.isfinite(vals[:, 0]).all():
            raise RunFailedError(
                f"training diverged: the cost became {vals[:, 0][~np.isfinite(vals[:, 0])][0]} "
                f"in epoch {epoch} (step {self.step}); lower learning_rate_init or check the data"
            )
        return {
            "total_train": float(vals[:, 0].mean()),
            "recon_train": float(vals[:, 1].mean()),
            "kl_train": float(vals[:, 2].mean()),
            "l2": float(vals[-1, 3]),
            "kl_weight": float(last_w[0]),
            "l2_weight": float(last_w[1]),
        }

    def valid_pass(self) -> dict[str, float]:
        cfg = PassConfig.for_kind("valid")
        batches = epoch_batches(self._sizes("valid"), self.hps.batch_size, self.nrng)
        rows = []
        self.metrics.start()
        with torch.no_grad():
            for name, idx in batches:
                self.governor.tick()
                x, e, ln = self._batch(name, "valid", idx)
                scale, _ = self.masks.for_batch(name, "valid", idx, x, None)
                res = self.model(
                    x,
                    name,
                    cfg,
                    ext=e,
                    step=self.step,
                    generator=self.noise,
                    log_norm=ln,
                    input_scale=scale,
                    want_elementwise=True,
                )
                rows.append(torch.stack([res.cost, res.recon, res.kl]))
                self.metrics.add(name, idx, res.outputs["log_p_elem"])
        vals = torch.stack(rows).double().cpu().numpy()
        out = {
            "total_valid": float(vals[:, 0].mean()),
            "recon_valid": float(vals[:, 1].mean()),
            "kl_valid": float(vals[:, 2].mean()),
        }
        out.update(self.metrics.finish())
        st = self.state
        for key in ("valid_nll_heldin",):
            if key in out:
                st.smoothed[f"smth_{key}"] = smooth(st.smoothed.get(f"smth_{key}"), out[key])
                out[f"smth_{key}"] = st.smoothed[f"smth_{key}"]
        # Sample validation ranks models by the held-back elements (few trials); a rate
        # so small that no validation element is held back leaves LFADS's rule.
        out["selection_cost"] = out.get("valid_nll_sv", out["total_valid"])
        return out

    # ------------------------------------------------------------------ loop
    def _elapsed(self) -> float:
        return self.state.elapsed_seconds + (time.monotonic() - self._t0)

    def run(self) -> TrainResult:
        from ..io.fitlog import FitLogRow, append_fitlog_line

        t_call = time.monotonic()
        self._t0 = time.monotonic()
        hps = self.hps
        self.restore()
        if self.rescale_learning_rate and self.resumed_from is not None:
            self._rescale_learning_rate(self.resumed_from)
        if self.reseed is not None and self.seed != self.reseed:
            # A PBT exploit: the copied checkpoint carries the donor's random streams;
            # without new ones the copy would see the donor's batches and masks.
            self.seed = int(self.reseed)
            self.noise = NoiseSource(self.seed)
            self.nrng = np.random.default_rng(self.seed)
            self.log(f"Random streams reseeded with {self.seed}.")
        write_hyperparameters_file(self.save_dir, self.step, self.spec, self.flags, "train")
        st = self.state
        if st.finished is not None:
            return self._result("already_finished", t_call)
        if st.phase == "end_of_epoch":  # fresh start, TF restart, or a completed epoch
            epoch = st.epoch + 1 if self._completed_epochs() else 0
            phase, values = None, {}
            # A fresh run always trains one epoch; a resumed one may already be at its limit.
            stop = self._limit_reached(epoch) if self._completed_epochs() else None
            if stop:
                return self._result(stop, t_call)
        else:  # finish the epoch the checkpoint was written in
            epoch, phase, values = st.epoch, st.phase, dict(st.epoch_values)
        while True:
            if phase is None:
                values = self.train_pass(epoch)
                if epoch % 10 == 0:
                    self._save(False, "after_train", epoch, values)
            if phase in (None, "after_train"):
                values.update(self.valid_pass())
                self.state.valid_costs.append(values["selection_cost"])
                v = self.state.valid_costs[-1]
                if (
                    values["kl_weight"] >= 1.0
                    and (values["l2_weight"] >= 1.0 or not hps.l2_is_on)
                    and len(self.state.valid_costs) > 1
                    and v < self.state.lowest_valid_cost
                ):
                    self.state.lowest_valid_cost = v
                    self._save(True, "after_valid", epoch, values)
            phase = None
            tf_values = {k: v for k, v in values.items() if k in FITLOG_VALUES}
            extra = {k: v for k, v in values.items() if k not in FITLOG_VALUES}
            row = FitLogRow(
                epoch=epoch,
                step=self.step,
                **tf_values,
                metrics=extra if self.fitlog_metrics else {},
            )
            self.last_metrics = extra
            self.history.append(dict(extra))
            append_fitlog_line(self.fitlog, row)
            self._report(epoch, values)
            # Learning-rate rule on the training cost (spec §7.5).
            tc = self.state.train_costs
            n = hps.learning_rate_n_to_compare
            if len(tc) > n and values["total_train"] > max(tc[-n:]):
                self.lr = np.float32(self.lr * np.float32(hps.learning_rate_decay_factor))
                self.log(f"     Decreasing learning rate to {float(self.lr):f}.")
                tc.append(math.inf)
            else:
                tc.append(values["total_train"])
            self.state.epoch = epoch
            reason = None
            if float(self.lr) < hps.learning_rate_stop:
                self.log("Stopping optimization based on learning rate criteria.")
                reason = "learning_rate"
            else:
                reason = self._limit_reached(epoch + 1)
            if reason is not None:
                self.state.finished = reason if reason == "learning_rate" else None
                self._save(False, "end_of_epoch", epoch, {})
                return self._result(reason, t_call)
            epoch += 1

    def _completed_epochs(self) -> int:
        """Epochs completed so far in this run's history (0 after a fresh or TF start)."""
        return len(self.state.train_costs)

    def _limit_reached(self, next_epoch: int) -> str | None:
        h = self.hps
        if h.max_epochs is not None and next_epoch >= h.max_epochs:
            return "max_epochs"
        if h.max_train_seconds is not None and self._elapsed() >= h.max_train_seconds:
            return "max_train_seconds"
        return None

    def _report(self, epoch: int, v: dict[str, float]) -> None:
        self.log(
            f"Epoch:{epoch}, step:{self.step} (TRAIN, VALID): total: {v['total_train']:.2f}, "
            f"{v['total_valid']:.2f}  recon: {v['recon_train']:.2f}, {v['recon_valid']:.2f}  "
            f"kl: {v['kl_train']:.2f}, {v['kl_valid']:.2f}  l2: {v['l2']:.5f}  "
            f"kl weight: {v['kl_weight']:.2f}, l2 weight: {v['l2_weight']:.2f}  "
            f"lr: {float(self.lr):.6g}"
            + "".join(
                f"  {k}: {x:.4f}"
                for k, x in v.items()
                if k not in FITLOG_VALUES and self.fitlog_metrics
            )
        )

    def _result(self, reason: str, t_call: float) -> TrainResult:
        lve = self.lve.kept[-1] if self.lve.kept else None
        low = self.state.lowest_valid_cost
        return TrainResult(
            save_dir=self.save_dir,
            epochs=self._completed_epochs(),
            steps=self.step,
            stop_reason=reason,
            lowest_valid_cost=None if math.isinf(low) else low,
            lve_checkpoint=None if lve is None else self.save_dir / lve,
            last_checkpoint=self.last_checkpoint or self.resumed_from,
            seconds=time.monotonic() - t_call,
            resumed_from=self.resumed_from,
            device=str(self.device),
            seed=self.seed,
            metrics=dict(self.last_metrics),
            history=list(self.history),
        )


def _time_major(a: torch.Tensor | None) -> torch.Tensor | None:
    return None if a is None else a.transpose(0, 1).contiguous()


def read_checkpoint_arrays_step(prefix: Path) -> int:
    from ..io.tensorbundle import read_bundle

    return int(read_bundle(prefix, ["LFADS/global_step"])["LFADS/global_step"])


def train(
    data_dir: str | os.PathLike,
    save_dir: str | os.PathLike,
    hps: Hyperparameters,
    *,
    device: str = "cpu",
    seed: int | None = None,
    progress: bool | None = None,
    log: Callable[[str], Any] | TextIO | None = None,
    data_filename_stem: str = "lfads",
    checkpoint_pb_load_name: str = "checkpoint",
    reseed: int | None = None,
    rescale_learning_rate: bool = False,
) -> TrainResult:
    """Train LFADS on the input files of ``data_dir``, writing into ``save_dir``.

    Parameters
    ----------
    data_dir
        Folder of ``<stem>_<dataset>.h5`` input files (``lfadsInput``).
    save_dir
        Output folder (``lfadsOutput``): checkpoints, pointer files, ``fitlog.csv``,
        ``hyperparameters-<step>.txt``. An existing checkpoint is resumed.
    hps
        Hyperparameters (run_lfads.py flags, plus ``max_epochs``/``max_train_seconds``).
    device
        "cpu" (default), "cuda", "cuda:N" or "auto".
    seed
        Seeds initialisation, batching, dropout and sampling; None draws one
        (recorded in the checkpoints, so a resume continues the same streams).
    progress
        A progress bar (tqdm) of each epoch's batches on stderr: None = only on a terminal.
    log
        Where the per-epoch lines go: a callable, a text stream, or None for stderr.
    reseed
        Continue a resumed checkpoint with the random streams of this seed unless
        it already uses them (a PBT member that copied another member's
        checkpoint); None keeps the checkpoint's streams.
    rescale_learning_rate
        On a resume, multiply the checkpoint's rate by ``hps.learning_rate_init``
        over the ``learning_rate_init`` the checkpoint was trained with (from the
        newest hyperparameters file older than it). A PBT member whose searched
        initial rate was explored keeps LFADS's decay so far.

    Returns
    -------
    TrainResult

    Raises
    ------
    DataError
        Unusable input files (see :func:`~lfads_runs.engine.data.load_datasets`).
    CheckpointError
        A checkpoint to resume does not fit this model.
    RunFailedError
        The cost became NaN or infinite.
    """
    flags = RunFlags.make(
        data_dir=data_dir,
        lfads_save_dir=save_dir,
        checkpoint_pb_load_name=checkpoint_pb_load_name,
        data_filename_stem=data_filename_stem,
    )
    trainer = _Trainer(
        data_dir,
        save_dir,
        hps,
        device=device,
        seed=seed,
        progress=progress,
        log=log,
        flags=flags,
        stem=data_filename_stem,
        load_name=checkpoint_pb_load_name,
    )
    trainer.rescale_learning_rate = rescale_learning_rate
    trainer.reseed = reseed
    try:
        return trainer.run()
    finally:
        trainer.governor.restore()
