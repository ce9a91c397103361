"""C++ source of the engine's optional native kernels (built by :mod:`._ext`).

Kept in a Python module so that it ships with the package without package-data rules.
"""

CPP_SOURCE = r"""
// Fused GRU recurrences and a counter-based random generator for the LFADS engine.
//
// Built on first use by lfads_runs/engine/_ext.py (plain g++, no Python headers) and
// loaded with torch.ops.load_library. The recurrent matrix products go to ATen (MKL);
// everything elementwise of a time step is one loop here, which is what removes the
// per-operation overhead of a Python loop. Equations: shared/spec/lfads-model.md §2,
// in the "scan" form of _scan.py (input projections, biases and the +1 forget bias are
// precomputed for all steps by the caller).
#include <torch/library.h>
#include <ATen/ATen.h>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <vector>

namespace {

// expf with only arithmetic and bit operations (Cephes polynomial, about 1 ulp), so that
// the compiler vectorises the loops below without -ffast-math.
inline float vexp(float x) {
  x = std::min(std::max(x, -87.33654475f), 88.37626266f);
  float fx = std::floor(x * 1.44269504088896341f + 0.5f);
  x -= fx * 0.693359375f;
  x -= fx * -2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * x + 1.3981999507e-3f;
  y = y * x + 8.3334519073e-3f;
  y = y * x + 4.1665795894e-2f;
  y = y * x + 1.6666665459e-1f;
  y = y * x + 5.0000001201e-1f;
  y = y * x * x + x + 1.0f;
  int32_t n = static_cast<int32_t>(fx) + 127;
  uint32_t bits = static_cast<uint32_t>(n) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return y * scale;
}
inline float sigm(float x) { return 1.0f / (1.0f + vexp(-x)); }
inline float tanh_(float x) { return 2.0f / (1.0f + vexp(-2.0f * x)) - 1.0f; }

void check_f32(const at::Tensor& t, const char* what) {
  TORCH_CHECK(t.scalar_type() == at::kFloat, what, " must be float32");
  TORCH_CHECK(t.device().is_cpu(), what, " must be on the CPU");
}

// Forward. proj [K,T,B,3H] = input parts of [r | u | c] (any strides, last dim unit
// stride), h0 [K,B,H], w_ru [K,H,2H], w_c [K,H,H]. Returns hs [K,T,B,H] and, when train,
// gates [T,K,B,2H] (r|u after the sigmoid), cands [T,K,B,H] (c), rhs [K,T,B,H] (r*h_prev).
std::vector<at::Tensor> gru_fwd(const at::Tensor& proj, const at::Tensor& h0_in,
                                const at::Tensor& w_ru, const at::Tensor& w_c, double clip_d,
                                bool train) {
  check_f32(proj, "proj"); check_f32(h0_in, "h0");
  const int64_t K = proj.size(0), T = proj.size(1), B = proj.size(2), H = proj.size(3) / 3;
  TORCH_CHECK(proj.size(3) == 3 * H && proj.stride(3) == 1, "proj must be [K,T,B,3H], unit last stride");
  const at::Tensor& p_c = proj;
  const float clip = static_cast<float>(clip_d);
  const bool clip_all = clip < 1.0f;
  auto opt = proj.options();
  at::Tensor hs = at::empty({K, T, B, H}, opt);
  at::Tensor gates = train ? at::empty({T, K, B, 2 * H}, opt) : at::empty({1, K, B, 2 * H}, opt);
  at::Tensor cands = train ? at::empty({T, K, B, H}, opt) : at::empty({1, K, B, H}, opt);
  at::Tensor rhs = train ? at::empty({K, T, B, H}, opt) : at::Tensor();
  at::Tensor h = h0_in.contiguous().clone();
  at::Tensor rh = at::empty({K, B, H}, opt);
  const float* pru = proj.data_ptr<float>();
  const float* pc = pru + 2 * H;
  const int64_t r0 = proj.stride(0), r1 = proj.stride(1), r2 = proj.stride(2);
  const int64_t c0 = r0, c1 = r1, c2 = r2;
  (void)p_c;
  float* hsp = hs.data_ptr<float>();
  float* hp = h.data_ptr<float>();
  float* rhp = rh.data_ptr<float>();
  for (int64_t t = 0; t < T; ++t) {
    at::Tensor g = gates[train ? t : 0];
    at::Tensor c = cands[train ? t : 0];
    at::bmm_out(g, h, w_ru);
    float* gp = g.data_ptr<float>();
    float* rhs_p = train ? rhs.data_ptr<float>() : nullptr;
    for (int64_t k = 0; k < K; ++k) {
      for (int64_t b = 0; b < B; ++b) {
        float* __restrict__ gr = gp + (k * B + b) * 2 * H;
        const float* __restrict__ pr = pru + k * r0 + t * r1 + b * r2;
        const float* __restrict__ hrow = hp + (k * B + b) * H;
        float* __restrict__ rhrow = rhp + (k * B + b) * H;
        for (int64_t j = 0; j < 2 * H; ++j) gr[j] = sigm(gr[j] + pr[j]);
        for (int64_t j = 0; j < H; ++j) rhrow[j] = gr[j] * hrow[j];
        if (train) {
          float* __restrict__ dst = rhs_p + ((k * T + t) * B + b) * H;
          for (int64_t j = 0; j < H; ++j) dst[j] = rhrow[j];
        }
      }
    }
    at::bmm_out(c, rh, w_c);
    float* cp = c.data_ptr<float>();
    const bool do_clip = (t == 0) || clip_all;
    for (int64_t k = 0; k < K; ++k) {
      for (int64_t b = 0; b < B; ++b) {
        const int64_t row = k * B + b;
        float* __restrict__ crow = cp + row * H;
        const float* __restrict__ pcr = pc + k * c0 + t * c1 + b * c2;
        const float* __restrict__ u = gp + row * 2 * H + H;
        float* __restrict__ hrow = hp + row * H;
        float* __restrict__ out = hsp + ((k * T + t) * B + b) * H;
        for (int64_t j = 0; j < H; ++j) {
          const float cc = tanh_(crow[j] + pcr[j]);
          crow[j] = cc;
          out[j] = u[j] * hrow[j] + (1.0f - u[j]) * cc;
        }
        if (do_clip)
          for (int64_t j = 0; j < H; ++j) out[j] = std::min(std::max(out[j], -clip), clip);
        for (int64_t j = 0; j < H; ++j) hrow[j] = out[j];
      }
    }
  }
  if (!train) return {hs};
  return {hs, gates, cands, rhs};
}

// One row of the backward step, before the candidate product: gradients of the
// candidate and update-gate pre-activations, and the direct path dh * u.
__attribute__((noinline)) void bwd_row_a(int64_t H, const float* __restrict__ d,
                                         const float* __restrict__ u,
                                         const float* __restrict__ c,
                                         const float* __restrict__ hprev,
                                         float* __restrict__ car, float* __restrict__ dz,
                                         float* __restrict__ out_c, float* __restrict__ dzu_buf,
                                         float* __restrict__ out_u) {
  for (int64_t j = 0; j < H; ++j) {
    const float g = d[j];
    const float uu = u[j], cc = c[j];
    const float dzu = g * (hprev[j] - cc) * uu * (1.0f - uu);
    const float dzc = g * (1.0f - uu) * (1.0f - cc * cc);
    dz[j] = dzc;
    out_c[j] = dzc;
    dzu_buf[j] = dzu;
    out_u[j] = dzu;
    car[j] = g * uu;
  }
}

// One row after the candidate product x = dzc W_c^T: reset-gate pre-activation and carry.
__attribute__((noinline)) void bwd_row_b(int64_t H, const float* __restrict__ x,
                                         const float* __restrict__ r,
                                         const float* __restrict__ hprev,
                                         float* __restrict__ car, float* __restrict__ dzr_buf,
                                         float* __restrict__ out_r) {
  for (int64_t j = 0; j < H; ++j) {
    const float rr = r[j];
    const float dzr = x[j] * hprev[j] * rr * (1.0f - rr);
    dzr_buf[j] = dzr;
    out_r[j] = dzr;
    car[j] += x[j] * rr;
  }
}

// Backward of gru_fwd(train=true). grad_hs: per recurrence k an optional [T,B,H]
// gradient of its states; grad_last: optional [K,B,H] gradient of the final states.
// Returns d_proj [K,T,B,3H], d_h0 [K,B,H] and, when need_w, d_w_ru, d_w_c.
std::vector<at::Tensor> gru_bwd(const c10::List<c10::optional<at::Tensor>>& grad_hs,
                                const c10::optional<at::Tensor>& grad_last,
                                const at::Tensor& h0_in, const at::Tensor& w_ru,
                                const at::Tensor& w_c, const at::Tensor& hs,
                                const at::Tensor& gates, const at::Tensor& cands,
                                const at::Tensor& rhs, double clip_d, bool need_w) {
  const int64_t K = hs.size(0), T = hs.size(1), B = hs.size(2), H = hs.size(3);
  const float clip = static_cast<float>(clip_d);
  const bool clip_all = clip < 1.0f;
  auto opt = hs.options();
  at::Tensor h0 = h0_in.contiguous();
  at::Tensor d_proj = at::empty({K, T, B, 3 * H}, opt);
  at::Tensor carry = at::zeros({K, B, H}, opt);
  at::Tensor dzc = at::empty({K, B, H}, opt);
  at::Tensor dru = at::empty({K, B, 2 * H}, opt);
  at::Tensor drh = at::empty({K, B, H}, opt);
  at::Tensor dh = at::empty({K, B, H}, opt);
  at::Tensor w_ru_t = w_ru.transpose(1, 2);
  at::Tensor w_c_t = w_c.transpose(1, 2);
  std::vector<const float*> gk(K, nullptr);
  std::vector<at::Tensor> keep_alive;
  for (int64_t k = 0; k < K; ++k) {
    if (k < (int64_t)grad_hs.size()) {
      c10::optional<at::Tensor> g = grad_hs.get(k);
      if (g.has_value() && g->defined()) {
        at::Tensor gc = g->contiguous();
        keep_alive.push_back(gc);
        gk[k] = gc.data_ptr<float>();
      }
    }
  }
  const float* gl = nullptr;
  at::Tensor glc;
  if (grad_last.has_value() && grad_last->defined()) {
    glc = grad_last->contiguous();
    gl = glc.data_ptr<float>();
  }
  const float* hsp = hs.data_ptr<float>();
  const float* h0p = h0.data_ptr<float>();
  const float* rhsp = rhs.data_ptr<float>();
  float* carp = carry.data_ptr<float>();
  float* dzp = dzc.data_ptr<float>();
  float* drup = dru.data_ptr<float>();
  float* drhp = drh.data_ptr<float>();
  float* dhp = dh.data_ptr<float>();
  float* d_rup = d_proj.data_ptr<float>();
  float* d_cp = d_rup + 2 * H;
  for (int64_t t = T - 1; t >= 0; --t) {
    const float* gp = gates[t].data_ptr<float>();
    const float* cp = cands[t].data_ptr<float>();
    const bool masked = (t == 0) || clip_all;
    for (int64_t k = 0; k < K; ++k) {
      for (int64_t b = 0; b < B; ++b) {
        const int64_t row = k * B + b;
        const float* __restrict__ r = gp + row * 2 * H;
        const float* __restrict__ u = r + H;
        const float* __restrict__ c = cp + row * H;
        const float* __restrict__ hnew = hsp + ((k * T + t) * B + b) * H;
        const float* __restrict__ hprev =
            t > 0 ? hsp + ((k * T + t - 1) * B + b) * H : h0p + row * H;
        const float* __restrict__ go = gk[k] ? gk[k] + (t * B + b) * H : nullptr;
        const float* __restrict__ gla = (gl && t == T - 1) ? gl + row * H : nullptr;
        float* __restrict__ car = carp + row * H;
        float* __restrict__ d = dhp + row * H;
        float* __restrict__ dz = dzp + row * H;
        float* __restrict__ dr = drup + row * 2 * H;
        float* __restrict__ out_ru = d_rup + ((k * T + t) * B + b) * 3 * H;
        float* __restrict__ out_c = d_cp + ((k * T + t) * B + b) * 3 * H;
        for (int64_t j = 0; j < H; ++j) d[j] = car[j];
        if (go)
          for (int64_t j = 0; j < H; ++j) d[j] += go[j];
        if (gla)
          for (int64_t j = 0; j < H; ++j) d[j] += gla[j];
        if (masked)
          for (int64_t j = 0; j < H; ++j) d[j] = std::fabs(hnew[j]) < clip ? d[j] : 0.0f;
        bwd_row_a(H, d, u, c, hprev, car, dz, out_c, dr + H, out_ru + H);
      }
    }
    at::bmm_out(drh, dzc, w_c_t);
    for (int64_t k = 0; k < K; ++k) {
      for (int64_t b = 0; b < B; ++b) {
        const int64_t row = k * B + b;
        const float* __restrict__ r = gp + row * 2 * H;
        const float* __restrict__ hprev =
            t > 0 ? hsp + ((k * T + t - 1) * B + b) * H : h0p + row * H;
        const float* __restrict__ x = drhp + row * H;
        float* __restrict__ car = carp + row * H;
        float* __restrict__ dr = drup + row * 2 * H;
        float* __restrict__ out_ru = d_rup + ((k * T + t) * B + b) * 3 * H;
        bwd_row_b(H, x, r, hprev, car, dr, out_ru);
      }
    }
    carry.baddbmm_(dru, w_ru_t);
  }
  (void)rhsp;
  if (!need_w) return {d_proj, carry};
  at::Tensor d_ru = d_proj.narrow(3, 0, 2 * H);
  at::Tensor d_c = d_proj.narrow(3, 2 * H, H);
  at::Tensor d_w_ru = at::bmm(h0.transpose(1, 2), d_ru.select(1, 0));
  if (T > 1) {
    at::Tensor hp = hs.narrow(1, 0, T - 1).reshape({K, (T - 1) * B, H});
    at::Tensor dr = d_ru.narrow(1, 1, T - 1).reshape({K, (T - 1) * B, 2 * H});
    d_w_ru.baddbmm_(hp.transpose(1, 2), dr);
  }
  at::Tensor d_w_c = at::bmm(rhs.reshape({K, T * B, H}).transpose(1, 2),
                             d_c.reshape({K, T * B, H}));
  return {d_proj, carry, d_w_ru, d_w_c};
}

// ---------------------------------------------------------------------------------------
// The coupled controller -> generator loop (spec §3.9-§3.12) for one batch, time-major.
// One GRU step on [B, H] rows: xin has row stride xs and holds [r^ | u^ | c^] input parts.
void step_fwd(const float* xin, int64_t xs, const at::Tensor& h_prev, const at::Tensor& w_ru,
              const at::Tensor& w_c, at::Tensor gates, at::Tensor rh, at::Tensor cand,
              at::Tensor h_new, float clip, bool do_clip) {
  const int64_t B = h_prev.size(0), H = h_prev.size(1);
  at::mm_out(gates, h_prev, w_ru);
  float* gp = gates.data_ptr<float>();
  const float* hp = h_prev.data_ptr<float>();
  float* rhp = rh.data_ptr<float>();
  for (int64_t b = 0; b < B; ++b) {
    float* __restrict__ gr = gp + b * 2 * H;
    const float* __restrict__ x = xin + b * xs;
    const float* __restrict__ hrow = hp + b * H;
    float* __restrict__ rrow = rhp + b * H;
    for (int64_t j = 0; j < 2 * H; ++j) gr[j] = sigm(gr[j] + x[j]);
    for (int64_t j = 0; j < H; ++j) rrow[j] = gr[j] * hrow[j];
  }
  at::mm_out(cand, rh, w_c);
  float* cp = cand.data_ptr<float>();
  float* np_ = h_new.data_ptr<float>();
  for (int64_t b = 0; b < B; ++b) {
    float* __restrict__ crow = cp + b * H;
    const float* __restrict__ x = xin + b * xs + 2 * H;
    const float* __restrict__ u = gp + b * 2 * H + H;
    const float* __restrict__ hrow = hp + b * H;
    float* __restrict__ out = np_ + b * H;
    for (int64_t j = 0; j < H; ++j) {
      const float cc = tanh_(crow[j] + x[j]);
      crow[j] = cc;
      out[j] = u[j] * hrow[j] + (1.0f - u[j]) * cc;
    }
    if (do_clip)
      for (int64_t j = 0; j < H; ++j) out[j] = std::min(std::max(out[j], -clip), clip);
  }
}

// Backward of one step: dh (modified: masked by the clip) -> d_xin (row stride 3H), dh_prev.
void step_bwd(at::Tensor dh, const at::Tensor& gates, const at::Tensor& cand,
              const at::Tensor& h_prev, const at::Tensor& h_new, const at::Tensor& w_ru_t,
              const at::Tensor& w_c_t, float clip, bool masked, at::Tensor dzc, at::Tensor drh,
              at::Tensor dru, float* d_xin, at::Tensor dh_prev) {
  const int64_t B = h_prev.size(0), H = h_prev.size(1);
  float* d = dh.data_ptr<float>();
  const float* gp = gates.data_ptr<float>();
  const float* cp = cand.data_ptr<float>();
  const float* hp = h_prev.data_ptr<float>();
  const float* hn = h_new.data_ptr<float>();
  float* dzp = dzc.data_ptr<float>();
  float* drup = dru.data_ptr<float>();
  float* carp = dh_prev.data_ptr<float>();
  for (int64_t b = 0; b < B; ++b) {
    float* __restrict__ drow = d + b * H;
    if (masked) {
      const float* __restrict__ hrow = hn + b * H;
      for (int64_t j = 0; j < H; ++j) drow[j] = std::fabs(hrow[j]) < clip ? drow[j] : 0.0f;
    }
    bwd_row_a(H, drow, gp + b * 2 * H + H, cp + b * H, hp + b * H, carp + b * H,
              dzp + b * H, d_xin + b * 3 * H + 2 * H, drup + b * 2 * H + H,
              d_xin + b * 3 * H + H);
  }
  at::mm_out(drh, dzc, w_c_t);
  const float* x = drh.data_ptr<float>();
  for (int64_t b = 0; b < B; ++b)
    bwd_row_b(H, x + b * H, gp + b * 2 * H, hp + b * H, carp + b * H, drup + b * 2 * H,
              d_xin + b * 3 * H);
  dh_prev.addmm_(dru, w_ru_t);
}

// Feedback to the controller from the factors f [B, F]: fb_mode 1 = factors,
// 2 = Poisson rates exp(clip(f W + b)) (unclipped for the initial factors),
// 3 = Gaussian means (the first D columns of f W + b). lin receives f W + b.
void feedback(int64_t fb_mode, const at::Tensor& f, const at::Tensor& w_out,
              const at::Tensor& b_out, at::Tensor lin, at::Tensor fb, bool initial) {
  if (fb_mode == 1) { fb.copy_(f); return; }
  at::addmm_out(lin, b_out, f, w_out);
  const int64_t n = fb.numel();
  const int64_t D = fb.size(1), W = lin.size(1);
  float* lp = lin.data_ptr<float>();
  float* out = fb.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) {
    const float v = lp[(i / D) * W + (i % D)];
    if (fb_mode == 3) out[i] = v;
    else out[i] = initial ? std::exp(v) : std::exp(std::min(std::max(v, -80.0f), 80.0f));
  }
}

std::vector<at::Tensor> congen_fwd(
    const at::Tensor& cp, const c10::optional<at::Tensor>& keep_fb, const at::Tensor& w_fb,
    const at::Tensor& c0_in, const at::Tensor& w_ru_c, const at::Tensor& w_c_c,
    const at::Tensor& w_co, const at::Tensor& b_co, const at::Tensor& eps, bool sample,
    const at::Tensor& gp, const at::Tensor& w_u, const at::Tensor& g0_in,
    const at::Tensor& w_ru_g, const at::Tensor& w_c_g, const c10::optional<at::Tensor>& gen_keep,
    const at::Tensor& w_fac, int64_t fb_mode, const at::Tensor& w_out, const at::Tensor& b_out,
    double clip_d, bool train) {
  check_f32(cp, "cp"); check_f32(gp, "gp"); check_f32(eps, "eps");
  TORCH_CHECK(cp.stride(2) == 1 && gp.stride(2) == 1, "projections need a unit last stride");
  const int64_t T = cp.size(0), B = cp.size(1), C = c0_in.size(1), G = g0_in.size(1);
  const int64_t U = eps.size(2), F = w_fac.size(1);
  const int64_t NF = fb_mode == 0 ? 0 : w_fb.size(0);
  const float clip = static_cast<float>(clip_d);
  const bool clip_all = clip < 1.0f;
  auto opt = cp.options();
  const int64_t Ts = train ? T : 1;
  at::Tensor gs = at::empty({T, B, G}, opt), gd = at::empty({T, B, G}, opt);
  at::Tensor fac = at::empty({T, B, F}, opt), mv = at::empty({T, B, 2 * U}, opt);
  at::Tensor u = at::empty({T, B, U}, opt);
  at::Tensor cs = at::empty({T, B, C}, opt);
  at::Tensor c_gates = at::empty({Ts, B, 2 * C}, opt), c_cands = at::empty({Ts, B, C}, opt),
             c_rh = at::empty({Ts, B, C}, opt);
  at::Tensor g_gates = at::empty({Ts, B, 2 * G}, opt), g_cands = at::empty({Ts, B, G}, opt),
             g_rh = at::empty({Ts, B, G}, opt);
  at::Tensor fbk = at::empty({NF ? Ts : 0, B, NF}, opt);   // dropped feedback fed at step t
  at::Tensor fbv = at::empty({NF ? Ts : 0, B, NF}, opt);   // undropped feedback fed at step t
  const int64_t LW = (fb_mode >= 2) ? w_out.size(1) : 0;
  at::Tensor lins = at::empty({(fb_mode >= 2) ? Ts : 0, B, LW}, opt);  // lin of that feedback
  at::Tensor xc = at::empty({B, 3 * C}, opt), xg = at::empty({B, 3 * G}, opt);
  at::Tensor fb = at::empty({B, NF}, opt), lin = at::empty({B, LW}, opt);
  at::Tensor c0 = c0_in.contiguous(), g0 = g0_in.contiguous();
  if (NF) {
    at::Tensor f0 = at::mm(g0, w_fac);
    feedback(fb_mode, f0, w_out, b_out, lin, fb, true);
  }
  const float* cpp = cp.data_ptr<float>();
  const float* gpp = gp.data_ptr<float>();
  const int64_t cs0 = cp.stride(0), cs1 = cp.stride(1), gs0 = gp.stride(0), gs1 = gp.stride(1);
  const float* kfb = nullptr;
  at::Tensor kfbc, gkc;
  if (keep_fb.has_value() && keep_fb->defined() && NF) { kfbc = keep_fb->contiguous(); kfb = kfbc.data_ptr<float>(); }
  const float* gk = nullptr;
  if (gen_keep.has_value() && gen_keep->defined()) { gkc = gen_keep->contiguous(); gk = gkc.data_ptr<float>(); }
  at::Tensor epsc = eps.contiguous();
  const float* ep = epsc.data_ptr<float>();
  for (int64_t t = 0; t < T; ++t) {
    const int64_t i = train ? t : 0;
    // Controller input: encoder part (precomputed) + dropped feedback @ w_fb.
    float* xcp = xc.data_ptr<float>();
    for (int64_t b = 0; b < B; ++b)
      std::memcpy(xcp + b * 3 * C, cpp + t * cs0 + b * cs1, sizeof(float) * 3 * C);
    if (NF) {
      at::Tensor fk = fbk[i];
      float* fkp = fk.data_ptr<float>();
      const float* fbp = fb.data_ptr<float>();
      for (int64_t j = 0; j < B * NF; ++j) fkp[j] = kfb ? fbp[j] * kfb[t * B * NF + j] : fbp[j];
      if (train) fbv[i].copy_(fb);
      xc.addmm_(fk, w_fb);
    }
    at::Tensor c_prev = t == 0 ? c0 : cs[t - 1];
    step_fwd(xc.data_ptr<float>(), 3 * C, c_prev, w_ru_c, w_c_c, c_gates[i], c_rh[i],
             c_cands[i], cs[t], clip, t == 0 || clip_all);
    at::Tensor mvt = mv[t];
    at::addmm_out(mvt, b_co, cs[t], w_co);
    float* mvp = mvt.data_ptr<float>();
    float* up = u[t].data_ptr<float>();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = 0; j < U; ++j) {
        const float mu = mvp[b * 2 * U + j], lv = mvp[b * 2 * U + U + j];
        up[b * U + j] = sample ? mu + std::exp(0.5f * lv) * ep[(t * B + b) * U + j] : mu;
      }
    // Generator input: precomputed part (biases, external inputs) + u @ w_u.
    float* xgp = xg.data_ptr<float>();
    for (int64_t b = 0; b < B; ++b)
      std::memcpy(xgp + b * 3 * G, gpp + t * gs0 + b * gs1, sizeof(float) * 3 * G);
    xg.addmm_(u[t], w_u);
    at::Tensor g_prev = t == 0 ? g0 : gs[t - 1];
    step_fwd(xg.data_ptr<float>(), 3 * G, g_prev, w_ru_g, w_c_g, g_gates[i], g_rh[i],
             g_cands[i], gs[t], clip, t == 0 || clip_all);
    float* gdp = gd[t].data_ptr<float>();
    const float* gsp = gs[t].data_ptr<float>();
    for (int64_t j = 0; j < B * G; ++j) gdp[j] = gk ? gsp[j] * gk[t * B * G + j] : gsp[j];
    at::Tensor ft = fac[t];
    at::mm_out(ft, gd[t], w_fac);
    if (NF && t + 1 < T) {
      feedback(fb_mode, ft, w_out, b_out, lin, fb, false);
      if (train && fb_mode >= 2) lins[t + 1].copy_(lin);
    }
  }
  if (!train) return {gs, gd, fac, mv, u};
  if (NF && fb_mode >= 2) {  // lin of the initial feedback, for its backward
    at::Tensor f0 = at::mm(g0, w_fac);
    at::addmm_out(lin, b_out, f0, w_out);
    lins[0].copy_(lin);
  }
  return {gs, gd, fac, mv, u, cs, c_gates, c_cands, c_rh, g_gates, g_cands, g_rh, fbk, fbv, lins};
}

// Backward of congen_fwd(train=true): the sequential part only. Given the gradients of
// the factors and of [mu | logvar], returns d_xc [T,B,3C] (controller input pre-activations,
// biases and encoder part), d_xg [T,B,3G], d_mv [T,B,2U] (total), d_fac [T,B,F] (total,
// feedback included), d_lin [T,B,LW] (read-out pre-activation of the feedback, modes 2/3),
// d_c0 [B,C], d_g0 [B,G] (the initial-feedback path not included: see d_f0), d_f0 [B,F].
std::vector<at::Tensor> congen_bwd(
    const c10::optional<at::Tensor>& g_fac, const c10::optional<at::Tensor>& g_mv,
    const c10::optional<at::Tensor>& keep_fb, const at::Tensor& w_fb, const at::Tensor& c0_in,
    const at::Tensor& w_ru_c, const at::Tensor& w_c_c, const at::Tensor& w_co,
    const at::Tensor& eps, bool sample, const at::Tensor& w_u, const at::Tensor& g0_in,
    const at::Tensor& w_ru_g, const at::Tensor& w_c_g, const c10::optional<at::Tensor>& gen_keep,
    const at::Tensor& w_fac, int64_t fb_mode, const at::Tensor& w_out,
    const at::Tensor& gs, const at::Tensor& mv, const at::Tensor& cs,
    const at::Tensor& c_gates, const at::Tensor& c_cands, const at::Tensor& g_gates,
    const at::Tensor& g_cands, const at::Tensor& fbv, const at::Tensor& lins, double clip_d) {
  const int64_t T = gs.size(0), B = gs.size(1), G = gs.size(2), C = cs.size(2);
  const int64_t U = mv.size(2) / 2, F = w_fac.size(1);
  const int64_t NF = fb_mode == 0 ? 0 : w_fb.size(0);
  const int64_t LW = fb_mode >= 2 ? w_out.size(1) : 0;
  const float clip = static_cast<float>(clip_d);
  const bool clip_all = clip < 1.0f;
  auto opt = gs.options();
  at::Tensor c0 = c0_in.contiguous(), g0 = g0_in.contiguous();
  at::Tensor d_xc = at::empty({T, B, 3 * C}, opt), d_xg = at::empty({T, B, 3 * G}, opt);
  at::Tensor d_mv = at::empty({T, B, 2 * U}, opt), d_fac = at::empty({T, B, F}, opt);
  at::Tensor d_lin = at::zeros({LW ? T : 0, B, LW}, opt);
  at::Tensor dc = at::zeros({B, C}, opt), dg = at::zeros({B, G}, opt);
  at::Tensor dc2 = at::empty({B, C}, opt), dg2 = at::empty({B, G}, opt);
  at::Tensor dfb = at::zeros({B, NF}, opt);  // gradient of the feedback produced at step t
  at::Tensor dzc_c = at::empty({B, C}, opt), drh_c = at::empty({B, C}, opt),
             dru_c = at::empty({B, 2 * C}, opt);
  at::Tensor dzc_g = at::empty({B, G}, opt), drh_g = at::empty({B, G}, opt),
             dru_g = at::empty({B, 2 * G}, opt);
  at::Tensor dgd = at::empty({B, G}, opt), du = at::empty({B, U}, opt);
  at::Tensor w_ru_ct = w_ru_c.t(), w_c_ct = w_c_c.t(), w_ru_gt = w_ru_g.t(), w_c_gt = w_c_g.t();
  at::Tensor w_cot = w_co.t(), w_ut = w_u.t(), w_fact = w_fac.t();
  at::Tensor w_fbt = NF ? w_fb.t() : at::Tensor();
  at::Tensor w_outt = LW ? w_out.t() : at::Tensor();
  at::Tensor gfac, gmv, kfbc, gkc, epsc = eps.contiguous();
  const float* gf = nullptr; const float* gm = nullptr; const float* kfb = nullptr;
  const float* gk = nullptr;
  if (g_fac.has_value() && g_fac->defined()) { gfac = g_fac->contiguous(); gf = gfac.data_ptr<float>(); }
  if (g_mv.has_value() && g_mv->defined()) { gmv = g_mv->contiguous(); gm = gmv.data_ptr<float>(); }
  if (keep_fb.has_value() && keep_fb->defined() && NF) { kfbc = keep_fb->contiguous(); kfb = kfbc.data_ptr<float>(); }
  if (gen_keep.has_value() && gen_keep->defined()) { gkc = gen_keep->contiguous(); gk = gkc.data_ptr<float>(); }
  const float* ep = epsc.data_ptr<float>();
  for (int64_t t = T - 1; t >= 0; --t) {
    // Factors: external gradient plus the feedback they produced for step t+1.
    at::Tensor dft = d_fac[t];
    float* dfp = dft.data_ptr<float>();
    for (int64_t j = 0; j < B * F; ++j) dfp[j] = gf ? gf[t * B * F + j] : 0.0f;
    if (NF && t + 1 < T) {
      if (fb_mode == 1) {
        dft.add_(dfb);
      } else {  // through the rates / means: d lin, then through the read-out
        const float* fv = fbv[t + 1].data_ptr<float>();
        const float* lv = lins[t + 1].data_ptr<float>();
        float* dl = d_lin[t + 1].data_ptr<float>();
        const float* db = dfb.data_ptr<float>();
        for (int64_t b = 0; b < B; ++b)
          for (int64_t j = 0; j < NF; ++j) {
            const float g = db[b * NF + j];
            float v;
            if (fb_mode == 3) v = g;
            else v = std::fabs(lv[b * LW + j]) < 80.0f ? g * fv[b * NF + j] : 0.0f;
            dl[b * LW + j] = v;
          }
        dft.addmm_(d_lin[t + 1], w_outt);
      }
    }
    // Generator output dropout, then the generator step.
    at::mm_out(dgd, dft, w_fact);
    float* dgp = dg.data_ptr<float>();
    const float* dgdp = dgd.data_ptr<float>();
    for (int64_t j = 0; j < B * G; ++j) dgp[j] += gk ? dgdp[j] * gk[t * B * G + j] : dgdp[j];
    at::Tensor g_prev = t == 0 ? g0 : gs[t - 1];
    dg2.zero_();
    step_bwd(dg, g_gates[t], g_cands[t], g_prev, gs[t], w_ru_gt, w_c_gt, clip,
             t == 0 || clip_all, dzc_g, drh_g, dru_g, d_xg[t].data_ptr<float>(), dg2);
    std::swap(dg, dg2);
    // Inferred input u = mu + exp(lv/2) eps: gradients of mu and logvar.
    at::mm_out(du, d_xg[t], w_ut);
    const float* dup = du.data_ptr<float>();
    const float* mvp = mv[t].data_ptr<float>();
    float* dmv = d_mv[t].data_ptr<float>();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = 0; j < U; ++j) {
        const int64_t m = b * 2 * U + j, l = m + U;
        const float d = dup[b * U + j];
        dmv[m] = (gm ? gm[t * B * 2 * U + m] : 0.0f) + d;
        float dl = gm ? gm[t * B * 2 * U + l] : 0.0f;
        if (sample) dl += d * 0.5f * std::exp(0.5f * mvp[l]) * ep[(t * B + b) * U + j];
        dmv[l] = dl;
      }
    dc.addmm_(d_mv[t], w_cot);
    at::Tensor c_prev = t == 0 ? c0 : cs[t - 1];
    dc2.zero_();
    step_bwd(dc, c_gates[t], c_cands[t], c_prev, cs[t], w_ru_ct, w_c_ct, clip,
             t == 0 || clip_all, dzc_c, drh_c, dru_c, d_xc[t].data_ptr<float>(), dc2);
    std::swap(dc, dc2);
    if (NF) {  // the feedback fed at step t came from step t-1 (or the initial factors)
      at::mm_out(dfb, d_xc[t], w_fbt);
      if (kfb) {
        float* p = dfb.data_ptr<float>();
        for (int64_t j = 0; j < B * NF; ++j) p[j] *= kfb[t * B * NF + j];
      }
    }
  }
  // Initial feedback: from f0 = g0 w_fac (no dropout, unclipped rates).
  at::Tensor d_f0 = at::zeros({B, F}, opt);
  if (NF) {
    if (fb_mode == 1) {
      d_f0.copy_(dfb);
    } else {
      const float* fv = fbv[0].data_ptr<float>();
      float* dl = d_lin[0].data_ptr<float>();
      const float* db = dfb.data_ptr<float>();
      for (int64_t b = 0; b < B; ++b)
        for (int64_t j = 0; j < NF; ++j)
          dl[b * LW + j] = fb_mode == 3 ? db[b * NF + j] : db[b * NF + j] * fv[b * NF + j];
      d_f0.addmm_(d_lin[0], w_outt);
    }
  }
  return {d_xc, d_xg, d_mv, d_fac, d_lin, dc, dg, d_f0};
}

// Counter-based generator: 64 random bits for (key, counter) by splitmix64 finalisation.
inline uint64_t mix(uint64_t key, uint64_t ctr) {
  uint64_t z = ctr * 0x9E3779B97F4A7C15ULL + key;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// out[i] = 1/kp where a uniform draw is < kp, else 0 (a scaled dropout keep mask).
void keep_mask_(at::Tensor out, int64_t key, int64_t counter, double kp) {
  check_f32(out, "out");
  TORCH_CHECK(out.is_contiguous(), "out must be contiguous");
  float* p = out.data_ptr<float>();
  const int64_t n = out.numel();
  const float scale = static_cast<float>(1.0 / kp);
  const float kpf = static_cast<float>(kp);
  const uint64_t k = static_cast<uint64_t>(key), c = static_cast<uint64_t>(counter);
  for (int64_t i = 0; i < n; ++i) {
    const float u = static_cast<float>(mix(k, c + i) >> 40) * 5.9604644775390625e-08f;
    p[i] = u < kpf ? scale : 0.0f;
  }
}

// Standard normal draws (Box-Muller, cosine branch), one per counter value.
void normal_(at::Tensor out, int64_t key, int64_t counter) {
  check_f32(out, "out");
  TORCH_CHECK(out.is_contiguous(), "out must be contiguous");
  float* p = out.data_ptr<float>();
  const int64_t n = out.numel();
  const uint64_t k = static_cast<uint64_t>(key), c = static_cast<uint64_t>(counter);
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t z = mix(k, c + i);
    const double u1 = (static_cast<double>(z >> 32) + 0.5) * 2.3283064365386963e-10;
    const double u2 = static_cast<double>(z & 0xFFFFFFFFULL) * 2.3283064365386963e-10;
    p[i] = static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  }
}

}  // namespace

TORCH_LIBRARY(lfads_ext, m) {
  m.def("gru_fwd(Tensor proj, Tensor h0, Tensor w_ru, Tensor w_c, float clip, bool train) -> Tensor[]", &gru_fwd);
  m.def("gru_bwd(Tensor?[] grad_hs, Tensor? grad_last, Tensor h0, Tensor w_ru, Tensor w_c, Tensor hs, Tensor gates, Tensor cands, Tensor rhs, float clip, bool need_w) -> Tensor[]", &gru_bwd);
  m.def("congen_fwd(Tensor cp, Tensor? keep_fb, Tensor w_fb, Tensor c0, Tensor w_ru_c, Tensor w_c_c, Tensor w_co, Tensor b_co, Tensor eps, bool sample, Tensor gp, Tensor w_u, Tensor g0, Tensor w_ru_g, Tensor w_c_g, Tensor? gen_keep, Tensor w_fac, int fb_mode, Tensor w_out, Tensor b_out, float clip, bool train) -> Tensor[]", &congen_fwd);
  m.def("congen_bwd(Tensor? g_fac, Tensor? g_mv, Tensor? keep_fb, Tensor w_fb, Tensor c0, Tensor w_ru_c, Tensor w_c_c, Tensor w_co, Tensor eps, bool sample, Tensor w_u, Tensor g0, Tensor w_ru_g, Tensor w_c_g, Tensor? gen_keep, Tensor w_fac, int fb_mode, Tensor w_out, Tensor gs, Tensor mv, Tensor cs, Tensor c_gates, Tensor c_cands, Tensor g_gates, Tensor g_cands, Tensor fbv, Tensor lins, float clip) -> Tensor[]", &congen_bwd);
  m.def("keep_mask_(Tensor(a!) out, int key, int counter, float kp) -> ()", &keep_mask_);
  m.def("normal_(Tensor(a!) out, int key, int counter) -> ()", &normal_);
}
"""
