"""An independent, deliberately naive LFADS training graph for tests.

Written from the TensorFlow graph (lfads.py ``LFADS.__init__`` for kind ``train``,
distributions.py) rather than from the engine: batch-major tensors, one Python
step per time bin, explicit concatenations in TensorFlow's order, dropout as
explicit keep masks, and torch autograd for every gradient. It shares no code
with :mod:`lfads_runs.engine` except the parameter names, so agreement of costs
and gradients checks the engine's training semantics (dropout positions,
sampling, the sampled KL of the inferred inputs, priors, L2) and its
hand-written backward passes.

Random draws are supplied by the caller in the order the engine draws them
(see :class:`RecordingNoise`), converted to batch-major here.
"""

from __future__ import annotations

import math

import torch

from lfads_runs.engine._rng import NoiseSource

LOG_2PI = math.log(2.0 * math.pi)


class RecordingNoise(NoiseSource):
    """A noise source that records every draw (kind, tensor) in order."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed, use_native=False)
        self.draws: list[tuple[str, torch.Tensor]] = []

    def keep_mask(self, shape, kp, device):
        out = super().keep_mask(shape, kp, device)
        self.draws.append(("mask", out.clone()))
        return out

    def normal(self, shape, device):
        out = super().normal(shape, device)
        self.draws.append(("normal", out.clone()))
        return out


def _tm_to_bm(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(0, 1)


def _sig(x):
    return torch.sigmoid(x)


def reference_cost(P, hps, spec, x, dataset, draws, step, ext=None):
    """The TF ``train`` cost of one batch.

    Parameters
    ----------
    P : dict TF name -> tensor (leaves that require grad for the gradient check)
    x : [B, T, D] float counts; ext : [B, T, E] or None
    draws : the engine's recorded draws for this pass, in order
    """
    kp = hps.keep_prob
    B, T, D = x.shape
    clip = hps.cell_clip_value
    draws = list(draws)

    def take(kind):
        k, v = draws.pop(0)
        assert k == kind, (k, kind)
        return v

    def dropout(v, time_major_mask=True):
        if kp >= 1.0:  # the engine draws no mask then
            return v
        m = take("mask")
        return v * (_tm_to_bm(m) if time_major_mask else m)

    def linear(v, W, b=None):
        y = v @ W
        return y if b is None else y + b

    def gru(scope, inp, h):
        p = f"LFADS/{scope}/GRU"
        xh = torch.cat([inp, h], 1)
        ru = linear(xh, P[f"{p}/Gates/xh_2_ru/W"], P[f"{p}/Gates/xh_2_ru/b"])
        H = h.shape[1]
        r, u = _sig(ru[:, :H]), _sig(ru[:, H:] + 1.0)
        xrh = torch.cat([inp, r * h], 1)
        c = torch.tanh(linear(xrh, P[f"{p}/Candidate/xrh_2_c/W"], P[f"{p}/Candidate/xrh_2_c/b"]))
        return torch.clamp(u * h + (1 - u) * c, -clip, clip)

    def gengru(scope, inp, h):
        p = f"LFADS/{scope}/GenGRU"
        H = h.shape[1]
        r_h = linear(h, P[f"{p}/Gates/h_2_ru/W"], P[f"{p}/Gates/h_2_ru/b"])
        r_all = r_h
        if inp is not None:
            r_all = r_all + inp @ P[f"{p}/Gates/x_2_ru/W"]
        r, u = _sig(r_all[:, :H]), _sig(r_all[:, H:] + 1.0)
        c_all = linear(r * h, P[f"{p}/Candidate/rh_2_c/W"], P[f"{p}/Candidate/rh_2_c/b"])
        if inp is not None:
            c_all = c_all + inp @ P[f"{p}/Candidate/x_2_c/W"]
        c = torch.tanh(c_all)
        return torch.clamp(u * h + (1 - u) * c, -clip, clip)

    # Dropout of data (and external inputs): the engine draws the ext mask first.
    ext_do = None
    if hps.ext_input_dim > 0:
        ext_do = dropout(ext)
    x_do = dropout(x)

    ds = spec.dataset(dataset)
    if spec.has_readin:
        W_in = P[f"LFADS/x_2_infac_{ds.name}/W"]
        b_in = P[f"LFADS/x_2_infac_{ds.name}/b"]
    else:
        W_in, b_in = torch.eye(D), torch.zeros(D)

    def enc_input(t):
        f = x_do[:, t] @ W_in + b_in
        if hps.ext_input_dim > 0 and not hps.inject_ext_input_to_gen:
            f = torch.cat([f, ext_do[:, t]], 1)
        return f

    def encode(name, direction, n):
        h = P[f"LFADS/{name}_enc_{direction}/{name}_enc_t0_{direction}"].expand(B, -1)
        outs = [None] * n
        ts = range(n) if direction == "fwd" else reversed(range(n))
        for t in ts:
            h = gru(f"{name}_enc_{direction}", enc_input(t), h)
            outs[t] = h
        return outs

    n_ic = min(hps.num_steps_for_gen_ic, T)
    ic_f = encode("ic", "fwd", n_ic)
    ic_r = encode("ic", "rev", n_ic)
    U = hps.co_dim
    if U > 0:
        ci_f = encode("ci", "fwd", T)
        ci_r = None if hps.do_causal_controller else encode("ci", "rev", T)

    # g0 posterior and prior.
    ic_enc = dropout(torch.cat([ic_f[-1], ic_r[0]], 1), time_major_mask=False)
    q_mean = linear(
        ic_enc, P["LFADS/z/ic_enc_2_post_g0/mean/W"], P["LFADS/z/ic_enc_2_post_g0/mean/b"]
    )
    q_lv = linear(
        ic_enc, P["LFADS/z/ic_enc_2_post_g0/logvar/W"], P["LFADS/z/ic_enc_2_post_g0/logvar/b"]
    )
    if hps.ic_post_var_min > 0:
        q_lv = torch.log(torch.exp(q_lv) + hps.ic_post_var_min)
    g0 = q_mean + torch.exp(0.5 * q_lv) * take("normal")
    p_mean = P["LFADS/z/prior_g0/mean"]
    p_lv = P["LFADS/z/prior_g0/logvar"]
    if hps.ic_prior_var_max > hps.ic_prior_var_min:
        p_lv = torch.log(
            _sig(torch.exp(p_lv)) * (hps.ic_prior_var_max - hps.ic_prior_var_min)
            + hps.ic_prior_var_min
        )
    kl_g0 = 0.5 * (
        p_lv - q_lv + torch.exp(q_lv - p_lv) + ((q_mean - p_mean) / torch.exp(0.5 * p_lv)) ** 2 - 1
    ).sum(1)

    if "LFADS/gen/g0_2_gen_ic/W" in P:
        g = g0 @ P["LFADS/gen/g0_2_gen_ic/W"] + P["LFADS/gen/g0_2_gen_ic/b"]
    else:
        g = g0

    w = P["LFADS/gen/gen_2_fac/W"]
    w_fac = w / torch.sqrt(torch.clamp((w * w).sum(0, keepdim=True), min=1e-12))
    if hps.output_dist == "poisson":
        key = f"LFADS/glm/fac_2_logrates_{ds.name}"
        if f"{key}/W" in P:
            W_out, b_out = P[f"{key}/W"], P[f"{key}/b"]
        else:
            W_out, b_out = torch.eye(D), torch.zeros(D)
    else:
        m, v = f"LFADS/glm/fac_2_means_{ds.name}", f"LFADS/glm/fac_2_logvars_{ds.name}"
        W_out = torch.cat([P[f"{m}/W"], P[f"{v}/W"]], 1)
        b_out = torch.cat([P[f"{m}/b"], P[f"{v}/b"]], 1)

    def rates_of(f, clip_rates):
        lin = f @ W_out + b_out
        if hps.output_dist == "gaussian":
            return lin[:, :D]
        return torch.exp(torch.clamp(lin, -80, 80) if clip_rates else lin)

    factors_prev = g @ w_fac  # factors[-1], from the undropped initial state
    rates_prev = rates_of(factors_prev, False)
    c_state = None
    if U > 0:
        c_state = P["LFADS/con/c0"].expand(B, -1)
        con_masks = _tm_to_bm(take("mask")) if kp < 1 else None
    gen_masks = _tm_to_bm(take("mask")) if kp < 1 else None
    if U > 0:
        eps_all = _tm_to_bm(take("normal"))
    assert not draws, "unused draws"

    L = hps.controller_input_lag
    log_p = 0.0
    means, logvars, noises = [], [], []
    for t in range(T):
        u_t = None
        if U > 0:
            a = ci_f[t - L] if t - L >= 0 else torch.zeros_like(ci_f[0])
            parts = [a]
            if not hps.do_causal_controller:
                parts.append(ci_r[t + L] if t + L < T else torch.zeros_like(ci_r[0]))
            if hps.do_feed_factors_to_controller:
                parts.append(
                    factors_prev if hps.feedback_factors_or_rates == "factors" else rates_prev
                )
            con_in = torch.cat(parts, 1)
            if con_masks is not None:
                con_in = con_in * con_masks[:, t]
            c_state = gengru("con", con_in, c_state)
            mu = linear(
                c_state,
                P["LFADS/con/con_to_post_co/mean/W"],
                P["LFADS/con/con_to_post_co/mean/b"],
            )
            lv = linear(
                c_state,
                P["LFADS/con/con_to_post_co/logvar/W"],
                P["LFADS/con/con_to_post_co/logvar/b"],
            )
            u_t = mu + torch.exp(0.5 * lv) * eps_all[:, t]
            means.append(mu)
            logvars.append(lv)
            noises.append(eps_all[:, t])
        if hps.ext_input_dim > 0 and hps.inject_ext_input_to_gen:
            gin = ext_do[:, t] if u_t is None else torch.cat([u_t, ext_do[:, t]], 1)
        else:
            gin = u_t
        g = gengru("gen", gin, g)
        g_out = g if gen_masks is None else g * gen_masks[:, t]
        f = g_out @ w_fac
        lin = f @ W_out + b_out
        if hps.output_dist == "poisson":
            ll = x[:, t] * lin - torch.exp(lin) - torch.lgamma(x[:, t] + 1)
        else:
            mean_t, lv_t = lin[:, :D], lin[:, D:]
            ll = -0.5 * (lv_t + LOG_2PI + ((x[:, t] - mean_t) / torch.exp(0.5 * lv_t)) ** 2)
        log_p = log_p + ll.sum(1)
        factors_prev = f
        rates_prev = rates_of(f, True)

    kl_co = torch.zeros(B)
    if U > 0:
        logevars = P["LFADS/z/u_prior_ar1/logevars"]
        logatau = P["LFADS/z/u_prior_ar1/logatau"]
        phi = torch.exp(-torch.exp(-logatau))
        logpvars = logevars - torch.log(1.0 - phi) - torch.log(1.0 + phi)

        def gauss_ll(z, mean, logvar):
            return -0.5 * (logvar + LOG_2PI + ((z - mean) / torch.exp(0.5 * logvar)) ** 2)

        zs = [m + torch.exp(0.5 * lv) * e for m, lv, e in zip(means, logvars, noises, strict=True)]
        logq = -0.5 * (logvars[0] + LOG_2PI + noises[0] ** 2)
        logp = gauss_ll(zs[0], 0.0, logpvars)
        for t in range(1, T):
            logq = logq + -0.5 * (logvars[t] + LOG_2PI + noises[t] ** 2)
            logp = logp + gauss_ll(zs[t], phi * zs[t - 1], logevars)
        kl_co = (logq - logp).sum(1)

    kl_b = hps.kl_ic_weight * kl_g0 + hps.kl_co_weight * kl_co
    recon = -log_p.mean()
    kl = kl_b.mean()

    l2 = torch.zeros(())
    if hps.l2_gen_scale > 0 or hps.l2_con_scale > 0:
        total, count = 0.0, 0
        for scope, scale in (("gen", hps.l2_gen_scale), ("con", hps.l2_con_scale)):
            for suffix in ("Gates/h_2_ru/W", "Gates/h_2_ru/b", "Candidate/rh_2_c/W",
                           "Candidate/rh_2_c/b"):  # fmt: skip
                name = f"LFADS/{scope}/GenGRU/{suffix}"
                if name in P:
                    total = total + 0.5 * scale * (P[name] ** 2).sum()
                    count += P[name].numel()
        l2 = total / count

    def ramp(start, n):
        return min(max(step - start, 0) / n, 1.0)

    cost = recon + ramp(hps.kl_start_step, hps.kl_increase_steps) * kl
    cost = cost + ramp(hps.l2_start_step, hps.l2_increase_steps) * l2
    return cost, recon, kl, l2
