"""The LFADS forward model and its cost, equation by equation (spec §3, §4).

Tensors are time-major inside (``[T, B, ...]``). Every random draw of a pass
(dropout masks, posterior and prior samples) comes, in a fixed order, from the
pass's :class:`~lfads_runs.engine._rng.NoiseSource`: the native kernels'
counter-based stream, or a seeded ``torch.Generator`` without them. Its state is
saved with each checkpoint, so a seeded run is reproducible and an interrupted
run resumes exactly. The initial weights come from a separate seeded
``torch.Generator`` (:meth:`LfadsModel.initialize`).
"""

from __future__ import annotations

import math

import attrs
import torch

from ..hparams import CLIP_VALUE
from ..layout import POSTERIOR_KINDS
from ..model_spec import ModelSpec
from ._congen import FB_FACTORS, FB_MEANS, FB_NONE, FB_RATES, CongenScan, congen_forward
from ._ext import native, native_for
from ._linear import batched_linear
from ._loglik import poisson_log_lik
from ._rng import NoiseSource, as_noise_source
from ._scan import gru_layer
from .params import Alignment, ParamStore

__all__ = ["LfadsModel", "PassConfig", "PassResult", "KINDS"]

_LOG_2PI = math.log(2.0 * math.pi)

#: exp(-CLIP_VALUE), exp(CLIP_VALUE) in float32: TF's exp(clip(lin)) is exp(lin) clamped to these.
_RATE_BOUNDS = tuple(float(torch.exp(torch.tensor(v))) for v in (-CLIP_VALUE, CLIP_VALUE))

#: What each evaluation kind samples (spec §3.14).
KINDS = ("train", *POSTERIOR_KINDS, "prior_sample")


@attrs.frozen
class PassConfig:
    """How one forward pass samples: keep probability and means vs samples."""

    keep_prob: float = 1.0
    g0: str = "sample"  #: "sample" (posterior sample), "mean" (posterior mean) or "prior"
    u: str = "sample"  #: "sample", "mean" or "prior" (AR(1) prior sample)
    costs: bool = True

    @classmethod
    def for_kind(cls, kind: str, keep_prob: float = 1.0) -> PassConfig:
        if kind == "train":
            return cls(keep_prob=keep_prob)
        if kind in ("valid", "posterior_sample_and_average"):
            return cls()
        if kind == "posterior_push_mean":
            return cls(g0="mean", u="mean")
        if kind == "prior_sample":
            return cls(g0="prior", u="prior", costs=False)
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")


@attrs.define(eq=False)  # tensors: no meaningful ==
class PassResult:
    """Costs (batch scalars) and, when requested, the model outputs (batch-major)."""

    cost: torch.Tensor
    recon: torch.Tensor
    kl: torch.Tensor
    l2: torch.Tensor
    kl_weight: float
    l2_weight: float
    nll_bound_vae: torch.Tensor
    nll_bound_iwae: torch.Tensor
    outputs: dict[str, torch.Tensor] = attrs.field(factory=dict)
    log_p_b: torch.Tensor | None = None  #: log p(x | z) per trial
    kl_b: torch.Tensor | None = None  #: weighted KL per trial (kl_ic_weight, kl_co_weight)
    corr: torch.Tensor | None = None  #: correlation cost of the batch


def _gate_bias(b_ru: torch.Tensor) -> torch.Tensor:
    """The r|u bias with LFADS's forget bias of +1 added to the u half."""
    H = b_ru.shape[-1] // 2
    fb = torch.cat((b_ru.new_zeros(H), b_ru.new_ones(H)))
    return b_ru + fb


class LfadsModel(torch.nn.Module):
    """LFADS with TensorFlow's parameterisation, built from a :class:`ModelSpec`.

    ``model.params[tf_name]`` is the parameter stored under a TensorFlow
    variable name, e.g. ``model.params["LFADS/gen/GenGRU/Gates/h_2_ru/W"]``.
    """

    def __init__(self, spec: ModelSpec, *, device: str | torch.device = "cpu") -> None:
        super().__init__()
        self.spec = spec
        self.params = ParamStore(spec, device=device)
        self.device = torch.device(device)
        self._l2_names = [(v.name, v.l2) for v in spec.l2_variables()]
        #: Run the controller loop in the native kernel when available (tests switch it off).
        self.fused_controller = True
        self._l2_count = float(spec.l2_element_count())
        self._heldin_index: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------ utilities
    def initialize(self, generator: torch.Generator, alignment: Alignment | None = None) -> None:
        self.params.initialize(generator, alignment)

    def _mask(self, noise: NoiseSource, shape, kp: float) -> torch.Tensor | None:
        return None if kp >= 1.0 else noise.keep_mask(shape, kp, self.device)

    def _dropout(self, x: torch.Tensor, kp: float, noise: NoiseSource) -> torch.Tensor:
        if kp >= 1.0:
            return x
        return x * noise.keep_mask(x.shape, kp, self.device)

    # --------------------------------------------------------------- pieces
    def prior_g0(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and effective log-variance of the g0 prior, each [1, I] (spec §3.6)."""
        h = self.spec.hps
        mean = self.params["LFADS/z/prior_g0/mean"]
        lv = self.params["LFADS/z/prior_g0/logvar"]
        if h.ic_prior_var_max > h.ic_prior_var_min:
            var = torch.sigmoid(torch.exp(lv)) * (h.ic_prior_var_max - h.ic_prior_var_min)
            lv = torch.log(var + h.ic_prior_var_min)
        return mean, lv

    def ar1_prior(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """phi, log noise variance and log process variance of the AR(1) prior, [1, U]."""
        logevars = self.params["LFADS/z/u_prior_ar1/logevars"]
        logatau = self.params["LFADS/z/u_prior_ar1/logatau"]
        phi = torch.exp(-torch.exp(-logatau))
        logpvars = logevars - torch.log(1.0 - phi) - torch.log(1.0 + phi)
        return phi, logevars, logpvars

    def factor_matrix(self) -> torch.Tensor:
        """``gen_2_fac/W`` with unit-norm columns (spec §3.12)."""
        w = self.params["LFADS/gen/gen_2_fac/W"]
        return w / torch.sqrt(torch.clamp((w * w).sum(0, keepdim=True), min=1e-12))

    def readout(self, dataset: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(W, b) of the read-out, Gaussian means and log-variances side by side; None = identity."""
        spec = self.spec
        ds = spec.dataset(dataset)
        if spec.hps.output_dist == "poisson":
            if spec.has_readout_identity(ds):
                return None
            base = f"LFADS/glm/fac_2_logrates_{ds.name}"
            return self.params[f"{base}/W"], self.params[f"{base}/b"]
        m = f"LFADS/glm/fac_2_means_{ds.name}"
        v = f"LFADS/glm/fac_2_logvars_{ds.name}"
        W = torch.cat((self.params[f"{m}/W"], self.params[f"{v}/W"]), 1)
        b = torch.cat((self.params[f"{m}/b"], self.params[f"{v}/b"]), 1)
        return W, b

    def l2_cost(self) -> torch.Tensor:
        """L2 over the recurrent weights and biases of gen and con (spec §4)."""
        h = self.spec.hps
        zero = torch.zeros((), device=self.device)
        if not h.l2_is_on or not self._l2_names:
            return zero
        total = zero
        for name, group in self._l2_names:
            scale = h.l2_gen_scale if group == "gen" else h.l2_con_scale
            p = self.params[name]
            total = total + 0.5 * scale * (p * p).sum()
        return total / self._l2_count

    # -------------------------------------------------------------- encoders
    def _encode(self, e: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run every encoder GRU.

        Returns scope -> states [T, B, H] in data time order for the controller-input
        encoders, and scope -> final state [B, H] for the IC encoders (the forward one
        at t = n-1, the reverse one at t = 0).
        """
        spec = self.spec
        h = spec.hps
        T, B, E = e.shape
        jobs = []  # (scope, t0 name, reverse, n_steps, H)
        if spec.has_ic_encoder:
            n = spec.num_steps_for_gen_ic
            jobs += [
                ("ic_enc_fwd", "ic_enc_t0_fwd", False, n, h.ic_enc_dim),
                ("ic_enc_rev", "ic_enc_t0_rev", True, n, h.ic_enc_dim),
            ]
        if spec.has_controller:
            jobs.append(("ci_enc_fwd", "ci_enc_t0_fwd", False, T, h.ci_enc_dim))
            if not h.do_causal_controller:
                jobs.append(("ci_enc_rev", "ci_enc_t0_rev", True, T, h.ci_enc_dim))
        groups: dict[tuple[int, int], list] = {}
        for job in jobs:
            groups.setdefault((job[3], job[4]), []).append(job)
        states: dict[str, torch.Tensor] = {}
        for (n, H), group in groups.items():
            w_ru, w_c, b, h0 = [], [], [], []
            for scope, t0, _, _, _ in group:
                P = f"LFADS/{scope}/GRU"
                w_ru.append(self.params[f"{P}/Gates/xh_2_ru/W"])
                w_c.append(self.params[f"{P}/Candidate/xrh_2_c/W"])
                b.append(
                    torch.cat(
                        (
                            _gate_bias(self.params[f"{P}/Gates/xh_2_ru/b"][0]),
                            self.params[f"{P}/Candidate/xrh_2_c/b"][0],
                        )
                    )
                )
                h0.append(self.params[f"LFADS/{scope}/{t0}"].expand(B, H))
            seqs, last = gru_layer(
                e[:n],
                [job[2] for job in group],
                torch.stack(w_ru),
                torch.stack(w_c),
                torch.stack(b),
                torch.stack(h0),
                h.cell_clip_value,
            )
            for k, (scope, _, reverse, _, _) in enumerate(group):
                if scope.startswith("ic_"):
                    states[scope] = last[k]
                else:
                    states[scope] = seqs[k].flip(0) if reverse else seqs[k]
        return states

    # ---------------------------------------------------------------- forward
    def forward(  # noqa: C901 - one function mirrors the one graph of the spec
        self,
        data: torch.Tensor | None,
        dataset: str,
        config: PassConfig,
        *,
        ext: torch.Tensor | None = None,
        step: int = 0,
        generator: NoiseSource | torch.Generator | None = None,
        batch_size: int | None = None,
        want_outputs: bool = False,
        log_norm: torch.Tensor | None = None,
        input_scale: torch.Tensor | None = None,
        recon_mask: torch.Tensor | None = None,
        want_elementwise: bool = False,
        repeats: int = 1,
        average_repeats: bool = False,
    ) -> PassResult:
        """One pass over a batch.

        Parameters
        ----------
        data
            Counts or values [B, T, D] (float32 on the model's device); None for
            ``prior_sample`` (then ``batch_size`` gives B).
        dataset
            LFADS dataset name (selects read-in and read-out).
        config
            Keep probability and what is sampled (:meth:`PassConfig.for_kind`).
        ext
            External inputs [B, T, E] when ``ext_input_dim`` > 0.
        step
            ``global_step`` for the KL and L2 ramps.
        generator
            Source of every random draw of the pass (a :class:`NoiseSource`, or a
            ``torch.Generator``; None draws an unseeded source).
        want_outputs
            Also return factors, rates, states, g0 and controller outputs.
        log_norm
            Poisson only: sum over time and neurons of lgamma(x + 1) per trial [B],
            when the caller has it precomputed (it depends on the data only).
        input_scale
            Multiplies the encoders' input [B, T_enc, D_in] (held-in neurons, encoded
            bins): the coordinated-dropout and sample-validation masks, rescaled.
        recon_mask
            Weights [B, T, D] of the elements in the reconstruction cost (1 = counted);
            the cost is rescaled by all elements / counted elements, so the balance of
            reconstruction, KL and L2 stays that of an unmasked pass.
        want_elementwise
            Also return log p(x | z) per element (``log_p_elem``, [T, B, D]).
        repeats
            Each trial of ``data`` (and ``ext``, ``log_norm``) stands for ``repeats``
            consecutive rows of the batch, which differ only in their samples: what
            depends on the data alone (read-in, encoders, the controller's encoder
            input) is computed once per trial. Needs ``keep_prob`` 1 (no dropout).
        average_repeats
            With ``repeats`` > 1: the outputs are averaged over each trial's rows (one
            row per trial of ``data``); costs stay per row. The Poisson read-out then
            never materialises the repeated data, and computes exp once for the
            likelihood and the rates. Without a controller or gradients, on the native
            kernels, the generator, read-out and averages are one kernel that writes no
            per-row states, factors or rates.
        """
        spec = self.spec
        h = spec.hps
        P = self.params
        kp = float(config.keep_prob)
        gen = as_noise_source(generator)
        T = spec.num_steps
        if data is not None:
            B = data.shape[0]
            if data.shape[1] != T:
                raise ValueError(f"data have {data.shape[1]} time steps, the model {T}")
        else:
            B = int(batch_size)
        R = int(repeats)
        if R < 1 or (R > 1 and (kp < 1.0 or data is None or recon_mask is not None)):
            raise ValueError("repeats > 1 needs data, keep_prob 1 and no recon_mask")
        B *= R
        has_ext = h.ext_input_dim > 0
        if has_ext and ext is None:
            raise ValueError("this model needs external inputs (ext_input_dim > 0)")
        out: dict[str, torch.Tensor] = {}
        zero = torch.zeros((), device=self.device)

        # Dropout of data and external inputs (spec §3.1); time-major from here on.
        x_t = data.transpose(0, 1) if data is not None else None
        ext_do = None
        if has_ext:
            ext_do = self._dropout(ext.transpose(0, 1), kp, gen)

        # Encoders (spec §3.2-§3.4, §3.8).
        enc: dict[str, torch.Tensor] = {}
        if data is not None and (spec.has_ic_encoder or spec.has_controller):
            x_do = self._dropout(self._encoder_input(x_t, dataset, input_scale), kp, gen)
            if spec.has_readin:
                base = f"LFADS/x_2_infac_{spec.dataset(dataset).name}"
                f_in = torch.matmul(x_do, P[f"{base}/W"]) + P[f"{base}/b"]
            else:
                f_in = x_do
            e = torch.cat((f_in, ext_do), -1) if spec.ext_to_encoders else f_in
            enc = self._encode(e)
        if R > 1:
            # From here on one row per sample; the data, the external inputs (ext_do) and
            # the controller's encoder input are repeated only where and when needed.
            enc = {
                k: v.repeat_interleave(R, 0) if k.startswith("ic_") else v for k, v in enc.items()
            }

        # g0 (spec §3.5-§3.7).
        kl_g0_b = zero
        if spec.has_ic_encoder:
            prior_mean, prior_lv = self.prior_g0()
            if config.g0 == "prior":
                eps = gen.normal((B, h.ic_dim), self.device)
                g0 = prior_mean + torch.exp(0.5 * prior_lv) * eps
            else:
                e_ic = torch.cat((enc["ic_enc_fwd"], enc["ic_enc_rev"]), -1)
                e_ic = self._dropout(e_ic, kp, gen)
                q_mean = (
                    e_ic @ P["LFADS/z/ic_enc_2_post_g0/mean/W"]
                    + P["LFADS/z/ic_enc_2_post_g0/mean/b"]
                )
                q_lv = (
                    e_ic @ P["LFADS/z/ic_enc_2_post_g0/logvar/W"]
                    + P["LFADS/z/ic_enc_2_post_g0/logvar/b"]
                )
                if h.ic_post_var_min > 0.0:
                    q_lv = torch.log(torch.exp(q_lv) + h.ic_post_var_min)
                if config.g0 == "mean":
                    g0 = q_mean
                else:
                    eps = gen.normal((B, h.ic_dim), self.device)
                    g0 = q_mean + torch.exp(0.5 * q_lv) * eps
                if config.costs:
                    kl_g0_b = 0.5 * (
                        prior_lv
                        - q_lv
                        + torch.exp(q_lv - prior_lv)
                        + (q_mean - prior_mean) ** 2 / torch.exp(prior_lv)
                        - 1.0
                    ).sum(1)
                if want_outputs:
                    out["post_g0_mean"] = q_mean
                    out["post_g0_logvar"] = q_lv
            if want_outputs:
                out["prior_g0_mean"] = prior_mean.expand(B, -1)
                out["prior_g0_logvar"] = prior_lv.expand(B, -1)
            if spec.has_g0_to_gen:
                g_init = g0 @ P["LFADS/gen/g0_2_gen_ic/W"] + P["LFADS/gen/g0_2_gen_ic/b"]
            else:
                g_init = g0
        else:
            g_init = P["LFADS/gen/g0"].expand(B, -1)

        w_fac = self.factor_matrix()
        ro = self.readout(dataset)

        # Controller and generator (spec §3.9-§3.11).
        kl_co_b = zero
        corr = zero
        averaged = R > 1 and average_repeats
        # Poisson log-likelihood and rates averaged over each trial's rows, data not repeated.
        poisson_avg = (
            averaged
            and h.output_dist == "poisson"
            and config.costs
            and not want_elementwise
            and recon_mask is None
        )
        fused = None
        if not spec.has_controller and poisson_avg and not torch.is_grad_enabled():
            fused = self._generator_poisson_averaged(g_init, ext_do, x_t, w_fac, ro, R)
        if fused is not None:
            gs = gs_do = factors = None
        elif spec.has_controller:
            gs, gs_do, u_all, co, factors = self._controller_generator(
                enc, g_init, ext_do, w_fac, ro, kp, config, gen, B, T, R
            )
            if config.costs:
                kl_co_b = self._kl_co(co)
                if h.co_mean_corr_scale > 0.0:
                    corr = self._corr_cost(co["mean"])
            if want_outputs:
                key = "prior_zs_ar_con" if config.u == "prior" else "controller_outputs"
                out[key] = u_all.transpose(0, 1)
        else:
            gs = self._generator_only(g_init, _rows(ext_do, R, 1), T, B)
            gs_do = self._dropout(gs, kp, gen)
            factors = None

        # Factors and read-out (spec §3.12, §3.13).
        D = spec.dataset(dataset).n_neurons
        log_p_b = zero
        rates_mean = None
        if fused is None:
            if factors is None:
                factors = gs_do @ w_fac
            if ro is None:
                lin = factors
            else:  # the bias added inside the product (no second pass over [T, B, D])
                F = factors.shape[-1]
                lin = torch.addmm(ro[1], factors.reshape(-1, F), ro[0]).view(T, B, -1)
        if fused is not None:
            gs_mean, factors_mean, rates_mean, xl_e = fused
            if log_norm is None:
                log_norm = poisson_log_norm(x_t, time_major=True)
            log_p_b = xl_e - log_norm.repeat_interleave(R, 0)
        elif poisson_avg:
            log_p_b, rates_mean = self._poisson_repeated(lin, x_t, R, log_norm, want_outputs)
        elif config.costs:
            x_t = _rows(x_t, R, 1)
            log_norm = _rows(log_norm, R, 0)
            ll = None
            if want_elementwise or recon_mask is not None:
                ll = self._log_likelihood_elements(lin, x_t, D)
                if want_elementwise:
                    out["log_p_elem"] = ll
            if recon_mask is None:  # TF LFADS's cost, summed as it sums it
                log_p_b = self._log_likelihood(lin, x_t, D, log_norm)
            else:
                m = recon_mask.transpose(0, 1)
                ratio = m.numel() / torch.clamp(m.sum(), min=1.0)
                log_p_b = (ll * m).sum((0, 2)) * ratio

        if want_outputs:
            out["gen_ics"] = g_init
            if fused is None:
                out["gen_states"] = gs.transpose(0, 1)
                out["factors"] = factors.transpose(0, 1)
            if averaged:
                out = {k: _mean_over_repeats(v, R) for k, v in out.items()}
            if fused is not None:
                out["gen_states"] = gs_mean.transpose(0, 1)
                out["factors"] = factors_mean.transpose(0, 1)
            if rates_mean is not None:
                out["output_dist_params"] = rates_mean.transpose(0, 1)
            else:
                dist = self._dist_params(lin, D).transpose(0, 1)
                out["output_dist_params"] = _mean_over_repeats(dist, R) if averaged else dist

        # Costs (spec §4).
        kl_b = h.kl_ic_weight * kl_g0_b + h.kl_co_weight * kl_co_b
        if config.costs:
            recon = -log_p_b.mean()
            kl = kl_b.mean()
            lb = log_p_b - kl_b
            nll_vae = -lb.mean()
            nll_iwae = -(torch.logsumexp(lb, 0) - math.log(B))
        else:
            recon = kl = nll_vae = nll_iwae = zero
        l2 = self.l2_cost()
        w_kl = h.kl_weight(step)
        w_l2 = h.l2_weight(step)
        cost = recon + w_kl * kl + w_l2 * l2 + h.co_mean_corr_scale * corr
        return PassResult(
            cost,
            recon,
            kl,
            l2,
            w_kl,
            w_l2,
            nll_vae,
            nll_iwae,
            out,
            log_p_b if config.costs else None,
            kl_b if config.costs else None,
            corr,
        )

    # ------------------------------------------------------------ generator
    def _gen_weights(self):
        P = self.params
        base = "LFADS/gen/GenGRU"
        w_x = None
        if self.spec.gen_input_dim > 0:
            w_x = torch.cat((P[f"{base}/Gates/x_2_ru/W"], P[f"{base}/Candidate/x_2_c/W"]), 1)
        b = torch.cat(
            (_gate_bias(P[f"{base}/Gates/h_2_ru/b"][0]), P[f"{base}/Candidate/rh_2_c/b"][0])
        )
        return w_x, b, P[f"{base}/Gates/h_2_ru/W"], P[f"{base}/Candidate/rh_2_c/W"]

    def _generator_inputs(self, g_init, ext_do, T, B):
        """A controller-less generator's input [T, B, E] and weights (bias, W_ru, W_c): its
        only inputs are the external ones, whose weights join the recurrent ones."""
        G = self.spec.hps.gen_dim
        w_x, b, w_ru, w_c = self._gen_weights()
        if not self.spec.ext_to_gen:
            return g_init.new_zeros(T, B, 0), b, w_ru, w_c
        w_ru, w_c = torch.cat((w_x[:, : 2 * G], w_ru)), torch.cat((w_x[:, 2 * G :], w_c))
        return ext_do, b, w_ru, w_c

    def _generator_only(self, g_init, ext_do, T, B):
        """Generator without controller: its inputs (external only) are known up front."""
        x, b, w_ru, w_c = self._generator_inputs(g_init, ext_do, T, B)
        seqs, _ = gru_layer(
            x,
            [False],
            w_ru.unsqueeze(0),
            w_c.unsqueeze(0),
            b.unsqueeze(0),
            g_init.unsqueeze(0),
            self.spec.hps.cell_clip_value,
        )
        return seqs[0]

    def _generator_poisson_averaged(self, g_init, ext_do, x_t, w_fac, ro, R):
        """Generator, factors and Poisson read-out without a controller in one native pass
        that averages each trial's R rows as it goes (``repeats`` with ``average_repeats``,
        no gradients); None without the kernels.

        Returns the means over each trial's rows of the states [T, B / R, G], factors and
        rates, and sum(x lin - exp(lin)) per row [B] (log p(x | z) before the normaliser).
        ``ext_do`` and ``x_t`` have one row per trial.
        """
        ops = native_for(g_init)
        if ops is None:
            return None
        hps = self.spec.hps
        x, b, w_ru, w_c = self._generator_inputs(g_init, ext_do, x_t.shape[0], x_t.shape[1])
        w_out, b_out = ro if ro is not None else (w_fac.new_zeros(0, 0), w_fac.new_zeros(0))
        lo, hi = _RATE_BOUNDS
        avg, xl_e = ops.gen_poisson_avg(
            x, w_ru, w_c, b, g_init, w_fac, w_out, b_out, x_t,
            float(hps.cell_clip_value), lo, hi, R,
        )  # fmt: skip
        G, F = hps.gen_dim, w_fac.shape[1]
        return avg[..., :G], avg[..., G : G + F], avg[..., G + F :], xl_e

    def _controller_generator(self, enc, g_init, ext_do, w_fac, ro, kp, config, gen, B, T, R=1):
        """The coupled controller -> generator loop (spec §3.9-§3.11).

        The encoder states in ``enc`` and ``ext_do`` have B / R rows (one per trial, see
        ``repeats``).
        """
        spec = self.spec
        h = spec.hps
        P = self.params
        C, U, G = h.con_dim, h.co_dim, h.gen_dim
        clip = h.cell_clip_value
        L = h.controller_input_lag
        H = h.ci_enc_dim
        # Encoder part of the controller input, lagged, for all steps: [T, B, n_enc].
        parts = []
        Bt = B // R  # rows of the encoder states
        if config.u != "prior":
            fwd = enc["ci_enc_fwd"]
            parts.append(
                torch.cat((fwd.new_zeros(min(L, T), Bt, H), fwd[: T - L]), 0) if L > 0 else fwd
            )
            if not h.do_causal_controller:
                rev = enc["ci_enc_rev"]
                parts.append(
                    torch.cat((rev[L:], rev.new_zeros(min(L, T), Bt, H)), 0) if L > 0 else rev
                )
        n_fb = spec.feedback_dim
        c_in_dim = spec.controller_input_dim
        keep = None
        if config.u != "prior":
            keep = self._mask(gen, (T, B, c_in_dim), kp)
        # Controller weights: input part split into encoder and feedback rows.
        cb = "LFADS/con/GenGRU"
        cw_x = torch.cat((P[f"{cb}/Gates/x_2_ru/W"], P[f"{cb}/Candidate/x_2_c/W"]), 1)
        c_b = torch.cat(
            (_gate_bias(P[f"{cb}/Gates/h_2_ru/b"][0]), P[f"{cb}/Candidate/rh_2_c/b"][0])
        )
        c_wru, c_wc = P[f"{cb}/Gates/h_2_ru/W"], P[f"{cb}/Candidate/rh_2_c/W"]
        n_enc = c_in_dim - n_fb
        if parts:
            a = torch.cat(parts, -1)
            if keep is not None:
                a = a * keep[..., :n_enc]
            c_proj = batched_linear(
                a.reshape(1, T * Bt, n_enc), cw_x[:n_enc].unsqueeze(0), c_b.unsqueeze(0)
            ).view(T, Bt, 3 * C)
        else:
            c_proj = None
        w_co = torch.cat(
            (P["LFADS/con/con_to_post_co/mean/W"], P["LFADS/con/con_to_post_co/logvar/W"]), 1
        )
        b_co = torch.cat(
            (P["LFADS/con/con_to_post_co/mean/b"], P["LFADS/con/con_to_post_co/logvar/b"]), 1
        )
        g_wx, g_b, g_wru, g_wc = self._gen_weights()
        g_proj_ext = None  # one row per trial, like c_proj
        if spec.ext_to_gen:
            g_proj_ext = torch.matmul(ext_do, g_wx[U:]) + g_b
        g_wx_u = g_wx[:U]
        gen_keep = self._mask(gen, (T, B, G), kp)
        # Noise of the inferred inputs; push_mean draws it too, for the sampled KL.
        eps = gen.normal((T, B, U), self.device)
        phi = logevars = logpvars = None
        if config.u == "prior":
            phi, logevars, logpvars = self.ar1_prior()
        ops = native() if self.fused_controller and self.device.type == "cpu" else None
        if ops is not None and config.u != "prior":
            # The kernel reads the per-trial projections R times (rep), no repeated copy.
            cp = c_proj if c_proj is not None else c_b.expand(T, Bt, 3 * C)
            keep_fb = keep[..., n_enc:].contiguous() if keep is not None and n_fb else None
            w_fb = cw_x[n_enc:] if n_fb else cw_x.new_zeros(0, 3 * C)
            gp = g_proj_ext if g_proj_ext is not None else g_b.expand(T, Bt, 3 * G)
            fb_mode, w_out, b_out = self._feedback_readout(ro, w_fac)
            args = (
                cp,
                w_fb,
                P["LFADS/con/c0"].expand(B, C),
                c_wru,
                c_wc,
                w_co,
                b_co[0],
                gp,
                g_wx_u,
                g_init,
                g_wru,
                g_wc,
                w_fac,
                w_out,
                b_out,
                keep_fb,
                eps,
                gen_keep,
            )
            cfg = (fb_mode, config.u == "sample", float(clip))
            if torch.is_grad_enabled():
                if R > 1:  # the autograd function takes full-size projections
                    args = (_rows(cp, R, 1),) + args[1:7] + (_rows(gp, R, 1),) + args[8:]
                gs_t, gd_t, fac, mv, u_all = CongenScan.apply(ops, cfg, *args)
            else:
                gs_t, gd_t, fac, mv, u_all = congen_forward(ops, cfg, *args, train=False, rep=R)
            co = {"mean": mv[..., :U], "logvar": mv[..., U:], "eps": eps}
            return gs_t, gd_t, u_all, co, fac

        c_proj, g_proj_ext = _rows(c_proj, R, 1), _rows(g_proj_ext, R, 1)
        # Per-step slices via unbind: indexing a tensor that needs gradients step by step
        # would make autograd allocate a full-size zero gradient for every step.
        c_proj_t = c_proj.unbind(0) if c_proj is not None else None
        g_proj_ext_t = g_proj_ext.unbind(0) if g_proj_ext is not None else None
        c = P["LFADS/con/c0"].expand(B, C)
        g = g_init
        fb = None
        if n_fb:
            fb = self._feedback(g_init @ w_fac, ro, initial=True)
        gs, gs_do, us, means, logvars = [], [], [], [], []
        u_prev = None
        for t in range(T):
            if config.u == "prior":
                if t == 0:
                    u = torch.exp(0.5 * logpvars) * eps[0]
                else:
                    u = phi * u_prev + torch.exp(0.5 * logevars) * eps[t]
                u_prev = u
            else:
                xp = c_proj_t[t] if c_proj_t is not None else c_b
                if fb is not None:
                    fbt = fb if keep is None else fb * keep[t, :, n_enc:]
                    xp = xp + fbt @ cw_x[n_enc:]
                c = _gengru_step(xp, c, c_wru, c_wc, clip)
                mv = c @ w_co + b_co
                mu, lv = mv[:, :U], mv[:, U:]
                means.append(mu)
                logvars.append(lv)
                u = mu if config.u == "mean" else mu + torch.exp(0.5 * lv) * eps[t]
            us.append(u)
            gp = u @ g_wx_u + (g_proj_ext_t[t] if g_proj_ext_t is not None else g_b)
            g = _gengru_step(gp, g, g_wru, g_wc, clip)
            gs.append(g)
            gd = g if gen_keep is None else g * gen_keep[t]
            gs_do.append(gd)
            if fb is not None and t + 1 < T:
                fb = self._feedback(gd @ w_fac, ro, initial=False)
        gs_t = torch.stack(gs)
        u_all = torch.stack(us)
        co = {}
        if config.u != "prior":
            co = {"mean": torch.stack(means), "logvar": torch.stack(logvars), "eps": eps}
        # The dropped-out states that fed the factor feedback also give the factors.
        return gs_t, torch.stack(gs_do), u_all, co, None

    def _feedback_readout(self, ro, w_fac):
        """Feedback mode of the native loop and the read-out it needs (spec §3.9)."""
        h = self.spec.hps
        dummy = w_fac.new_zeros(0, 0)
        if not h.do_feed_factors_to_controller:
            return FB_NONE, dummy, w_fac.new_zeros(0)
        if h.feedback_factors_or_rates == "factors":
            return FB_FACTORS, dummy, w_fac.new_zeros(0)
        if ro is None:  # identity read-out (one dataset, F = D)
            F = w_fac.shape[1]
            return FB_RATES, torch.eye(F, device=w_fac.device), w_fac.new_zeros(F)
        mode = FB_RATES if h.output_dist == "poisson" else FB_MEANS
        return mode, ro[0], ro[1][0]

    def _feedback(self, factors, ro, *, initial: bool):
        h = self.spec.hps
        if h.feedback_factors_or_rates == "factors":
            return factors
        lin = factors if ro is None else factors @ ro[0] + ro[1]
        D = lin.shape[-1] if h.output_dist == "poisson" else lin.shape[-1] // 2
        if h.output_dist == "gaussian":
            return lin[..., :D]
        return torch.exp(lin) if initial else torch.exp(torch.clamp(lin, -CLIP_VALUE, CLIP_VALUE))

    # ------------------------------------------------------------------ costs
    def _kl_co(self, co) -> torch.Tensor:
        """Sampled KL of the inferred inputs against the AR(1) prior, per trial (spec §4)."""
        mean, lv, eps = co["mean"], co["logvar"], co["eps"]
        z = mean + torch.exp(0.5 * lv) * eps
        phi, logevars, logpvars = self.ar1_prior()
        logq = -0.5 * (lv + _LOG_2PI + eps * eps)
        lp0 = -0.5 * (logpvars + _LOG_2PI + z[0] ** 2 / torch.exp(logpvars))
        d = z[1:] - phi * z[:-1]
        lpt = -0.5 * (logevars + _LOG_2PI + d * d / torch.exp(logevars))
        return logq.sum((0, 2)) - lp0.sum(1) - lpt.sum((0, 2))

    @staticmethod
    def _corr_cost(mean: torch.Tensor) -> torch.Tensor:
        U = mean.shape[-1]
        s = torch.einsum("tbi,tbj->bij", mean, mean)  # [B, U, U]
        iu = torch.triu_indices(U, U, offset=1, device=mean.device)
        pairs = s[:, iu[0], iu[1]]
        return (0.5 * pairs * pairs).mean()

    def _log_likelihood(self, lin, x_t, D, log_norm=None) -> torch.Tensor:
        """log p(x | z) per trial, from the unclipped read-out (spec §3.13)."""
        if self.spec.hps.output_dist == "poisson":
            if log_norm is None:
                log_norm = poisson_log_norm(x_t, time_major=True)
            return poisson_log_lik(lin, x_t) - log_norm
        else:
            mu, lv = lin[..., :D], lin[..., D:]
            ll = -0.5 * (lv + _LOG_2PI + (x_t - mu) ** 2 / torch.exp(lv))
        return ll.sum((0, 2))

    def _poisson_repeated(self, lin, x_t, R, log_norm, want_rates):
        """Poisson log p(x | z) per row [B] and, if asked, the rates averaged over each
        trial's R rows [T, B / R, D], for data ``x_t`` [T, B / R, D] with one row per trial.

        sum(x lin) is a batched product per (step, trial), so the data are never
        repeated; exp(lin) is computed once for the likelihood and the rates (TF's
        exp(clip(lin)) equals exp(lin) clipped to [exp(-c), exp(c)], exp being monotone).
        """
        T, B, D = lin.shape
        Bt = B // R
        xl = torch.matmul(lin.reshape(T * Bt, R, D), x_t.reshape(T * Bt, D, 1)).view(T, B).sum(0)
        if log_norm is None:
            log_norm = poisson_log_norm(x_t, time_major=True)
        e = torch.exp(lin)
        log_p_b = xl - e.sum(2).sum(0) - log_norm.repeat_interleave(R, 0)
        rates = None
        if want_rates:
            lo, hi = _RATE_BOUNDS
            # In place only without gradients (autograd keeps e for exp's backward).
            e = e.clamp(lo, hi) if torch.is_grad_enabled() else e.clamp_(lo, hi)
            rates = e.view(T, Bt, R, D).mean(2)
        return log_p_b, rates

    def _log_likelihood_elements(self, lin, x_t, D) -> torch.Tensor:
        """log p(x | z) per element [T, B, D], normaliser included."""
        if self.spec.hps.output_dist == "poisson":
            return x_t * lin - torch.exp(lin) - torch.lgamma(x_t + 1.0)
        mu, lv = lin[..., :D], lin[..., D:]
        return -0.5 * (lv + _LOG_2PI + (x_t - mu) ** 2 / torch.exp(lv))

    def _encoder_input(self, x_t, dataset: str, scale) -> torch.Tensor:
        """What the encoders read [T, B, D_in]: held-in neurons, forward bins zeroed."""
        ds = self.spec.dataset(dataset)
        if ds.heldin is not None:
            idx = self._heldin_index.get(ds.name)
            if idx is None:
                idx = torch.tensor(ds.heldin, dtype=torch.long, device=x_t.device)
                self._heldin_index[ds.name] = idx
            x_t = x_t.index_select(2, idx)
        T_enc = self.spec.num_steps_encoded
        if scale is not None:
            x_t = torch.cat((x_t[:T_enc] * scale.transpose(0, 1), x_t[T_enc:]), 0)
        if T_enc < x_t.shape[0]:
            # The encoders never see the forward-prediction bins.
            x_t = torch.cat((x_t[:T_enc], x_t.new_zeros(x_t.shape[0] - T_enc, *x_t.shape[1:])), 0)
        return x_t

    def _dist_params(self, lin, D) -> torch.Tensor:
        if self.spec.hps.output_dist == "poisson":
            return torch.exp(torch.clamp(lin, -CLIP_VALUE, CLIP_VALUE))
        mu, lv = lin[..., :D], lin[..., D:]
        return torch.cat((mu, torch.exp(torch.clamp(lv, -CLIP_VALUE, CLIP_VALUE))), -1)


def poisson_log_norm(x: torch.Tensor, *, time_major: bool = False) -> torch.Tensor:
    """Per-trial sum of lgamma(k + 1) over time and neurons (the Poisson normaliser)."""
    return torch.lgamma(x + 1.0).sum((0, 2) if time_major else (1, 2))


def _rows(x: torch.Tensor | None, R: int, dim: int) -> torch.Tensor | None:
    """``x`` with each row (along ``dim``) repeated R times in place (see ``repeats``)."""
    return x if x is None or R == 1 else x.repeat_interleave(R, dim)


def _mean_over_repeats(v: torch.Tensor, R: int) -> torch.Tensor:
    """The mean over each trial's R consecutive rows of a batch-major output.

    [B, T, X] outputs are transposed time-major tensors: averaged time-major, no copy.
    """
    if v.dim() == 3:
        tm = v.transpose(0, 1)
        T, B, X = tm.shape
        return tm.reshape(T, B // R, R, X).mean(2).transpose(0, 1)
    return v.reshape(v.shape[0] // R, R, *v.shape[1:]).mean(1)


def _gengru_step(xp, h, w_ru, w_c, clip):
    """One GenGRU step given the input part ``xp`` = [x W_xru + b_ru(+1) | x W_xc + b_c]."""
    H = h.shape[-1]
    ru = torch.sigmoid(xp[:, : 2 * H] + h @ w_ru)
    r, u = ru[:, :H], ru[:, H:]
    c = torch.tanh(xp[:, 2 * H :] + (r * h) @ w_c)
    return torch.clamp(u * h + (1.0 - u) * c, -clip, clip)
