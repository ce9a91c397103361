"""C++ source of the engine's optional native kernels (built by :mod:`._ext`).

Kept in a Python module so that it ships with the package without package-data rules.
"""

CPP_SOURCE = r"""
// Fused GRU recurrences, the controller -> generator loop and a counter-based random
// generator for the LFADS engine (equations: shared/spec/lfads-model.md §2, §3.9-§3.12).
//
// Built on first use by lfads_runs/engine/_ext.py (plain g++, no Python headers) and
// loaded with torch.ops.load_library. Matrix products go to ATen (MKL); the elementwise
// work of a time step is one loop here. Every batch row is an independent recurrence
// (only the weights are shared), so the rows are split into one block per thread and each
// block runs its whole sequence without synchronisation; the weight gradients are then
// large multi-threaded products over all steps.
#include <torch/library.h>
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

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

// Run f(b0, b1) on blocks of batch rows, one block per thread.
template <typename F>
void for_row_blocks(int64_t B, const F& f) {
  const int64_t nt = std::max<int64_t>(1, at::get_num_threads());
  const int64_t grain = std::max<int64_t>(1, (B + nt - 1) / nt);
  // Worker threads do not inherit the caller's grad mode; the kernels never record autograd.
  at::parallel_for(0, B, grain, [&](int64_t b0, int64_t b1) {
    at::NoGradGuard no_grad;
    f(b0, b1);
  });
}

inline float* fp(const at::Tensor& t) { return t.data_ptr<float>(); }

// ------------------------------------------------------------------ row kernels
// Gates: g <- sigmoid(g + x) over 2H, rh <- r * h.
inline void row_gates(int64_t H, float* __restrict__ g, const float* __restrict__ x,
                      const float* __restrict__ h, float* __restrict__ rh) {
  for (int64_t j = 0; j < 2 * H; ++j) g[j] = sigm(g[j] + x[j]);
  for (int64_t j = 0; j < H; ++j) rh[j] = g[j] * h[j];
}

// Candidate and new state: c <- tanh(c + x), h_new = u h + (1 - u) c (clipped if asked).
inline void row_state(int64_t H, float* __restrict__ c, const float* __restrict__ x,
                      const float* __restrict__ u, const float* __restrict__ h,
                      float* __restrict__ hn, bool do_clip, float clip) {
  for (int64_t j = 0; j < H; ++j) {
    const float cc = tanh_(c[j] + x[j]);
    c[j] = cc;
    hn[j] = u[j] * h[j] + (1.0f - u[j]) * cc;
  }
  if (do_clip)
    for (int64_t j = 0; j < H; ++j) hn[j] = std::min(std::max(hn[j], -clip), clip);
}

// Backward, before the candidate product: from dh (already masked by the clip) the
// candidate and update-gate pre-activation gradients, and the direct path dh * u.
inline void row_bwd_a(int64_t H, const float* __restrict__ d, const float* __restrict__ u,
                      const float* __restrict__ c, const float* __restrict__ hprev,
                      float* __restrict__ car, float* __restrict__ dz, float* __restrict__ out_c,
                      float* __restrict__ dzu_buf, float* __restrict__ out_u) {
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

// Backward, after x = dzc W_c^T: reset-gate pre-activation gradient and the carry.
inline void row_bwd_b(int64_t H, const float* __restrict__ x, const float* __restrict__ r,
                      const float* __restrict__ hprev, float* __restrict__ car,
                      float* __restrict__ dzr_buf, float* __restrict__ out_r) {
  for (int64_t j = 0; j < H; ++j) {
    const float rr = r[j];
    const float dzr = x[j] * hprev[j] * rr * (1.0f - rr);
    dzr_buf[j] = dzr;
    out_r[j] = dzr;
    car[j] += x[j] * rr;
  }
}

inline void row_mask(int64_t H, float* __restrict__ d, const float* __restrict__ h, float clip) {
  for (int64_t j = 0; j < H; ++j) d[j] = std::fabs(h[j]) < clip ? d[j] : 0.0f;
}

// ------------------------------------------------------------------ GRU scans
// Forward. proj [K,T,B,3H] = input parts of [r | u | c] (any strides, unit last stride),
// h0 [K,B,H], w_ru [K,H,2H], w_c [K,H,H]. Returns hs [K,T,B,H] and, when train,
// gates [T,K,B,2H] (r|u after the sigmoid), cands [T,K,B,H] (c), rhs [K,T,B,H] (r*h_prev).
std::vector<at::Tensor> gru_fwd(const at::Tensor& proj, const at::Tensor& h0_in,
                                const at::Tensor& w_ru, const at::Tensor& w_c, double clip_d,
                                bool train) {
  check_f32(proj, "proj");
  check_f32(h0_in, "h0");
  const int64_t K = proj.size(0), T = proj.size(1), B = proj.size(2), H = proj.size(3) / 3;
  TORCH_CHECK(proj.size(3) == 3 * H && proj.stride(3) == 1, "proj must be [K,T,B,3H]");
  const float clip = static_cast<float>(clip_d);
  const bool clip_all = clip < 1.0f;
  auto opt = proj.options();
  at::Tensor hs = at::empty({K, T, B, H}, opt);
  at::Tensor gates = train ? at::empty({T, K, B, 2 * H}, opt) : at::Tensor();
  at::Tensor cands = train ? at::empty({T, K, B, H}, opt) : at::Tensor();
  at::Tensor rhs = train ? at::empty({K, T, B, H}, opt) : at::Tensor();
  at::Tensor h0 = h0_in.contiguous();
  const float* pp = fp(proj);
  const int64_t s0 = proj.stride(0), s1 = proj.stride(1), s2 = proj.stride(2);
  for_row_blocks(B, [&](int64_t b0, int64_t b1) {
    const int64_t nb = b1 - b0;
    at::Tensor h = h0.narrow(1, b0, nb).clone();  // [K, nb, H], contiguous
    at::Tensor g = at::empty({K, nb, 2 * H}, opt), c = at::empty({K, nb, H}, opt);
    at::Tensor rh = at::empty({K, nb, H}, opt);
    float *hp = fp(h), *gp = fp(g), *cp = fp(c), *rp = fp(rh);
    for (int64_t t = 0; t < T; ++t) {
      at::bmm_out(g, h, w_ru);
      for (int64_t k = 0; k < K; ++k)
        for (int64_t i = 0; i < nb; ++i) {
          const int64_t r = k * nb + i, b = b0 + i;
          row_gates(H, gp + r * 2 * H, pp + k * s0 + t * s1 + b * s2, hp + r * H, rp + r * H);
          if (train) {
            std::memcpy(fp(gates) + ((t * K + k) * B + b) * 2 * H, gp + r * 2 * H,
                        sizeof(float) * 2 * H);
            std::memcpy(fp(rhs) + ((k * T + t) * B + b) * H, rp + r * H, sizeof(float) * H);
          }
        }
      at::bmm_out(c, rh, w_c);
      const bool do_clip = (t == 0) || clip_all;
      for (int64_t k = 0; k < K; ++k)
        for (int64_t i = 0; i < nb; ++i) {
          const int64_t r = k * nb + i, b = b0 + i;
          float* out = fp(hs) + ((k * T + t) * B + b) * H;
          row_state(H, cp + r * H, pp + k * s0 + t * s1 + b * s2 + 2 * H, gp + r * 2 * H + H,
                    hp + r * H, out, do_clip, clip);
          std::memcpy(hp + r * H, out, sizeof(float) * H);
          if (train)
            std::memcpy(fp(cands) + ((t * K + k) * B + b) * H, cp + r * H, sizeof(float) * H);
        }
    }
  });
  if (!train) return {hs};
  return {hs, gates, cands, rhs};
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
  at::Tensor d_h0 = at::empty({K, B, H}, opt);
  at::Tensor w_ru_t = w_ru.transpose(1, 2), w_c_t = w_c.transpose(1, 2);
  std::vector<at::Tensor> gk(K);
  for (int64_t k = 0; k < K && k < (int64_t)grad_hs.size(); ++k) {
    c10::optional<at::Tensor> g = grad_hs.get(k);
    if (g.has_value() && g->defined()) gk[k] = g->contiguous();
  }
  at::Tensor gl;
  if (grad_last.has_value() && grad_last->defined()) gl = grad_last->contiguous();
  for_row_blocks(B, [&](int64_t b0, int64_t b1) {
    const int64_t nb = b1 - b0;
    at::Tensor carry = at::zeros({K, nb, H}, opt), d = at::empty({K, nb, H}, opt);
    at::Tensor dzc = at::empty({K, nb, H}, opt), drh = at::empty({K, nb, H}, opt);
    at::Tensor dru = at::empty({K, nb, 2 * H}, opt);
    float *car = fp(carry), *dp = fp(d), *dz = fp(dzc), *dx = fp(drh), *dr = fp(dru);
    const float* hsp = fp(hs);
    const float* h0p = fp(h0);
    float* out = fp(d_proj);
    for (int64_t t = T - 1; t >= 0; --t) {
      const float* gp = fp(gates) + t * K * B * 2 * H;
      const float* cp = fp(cands) + t * K * B * H;
      const bool masked = (t == 0) || clip_all;
      for (int64_t k = 0; k < K; ++k)
        for (int64_t i = 0; i < nb; ++i) {
          const int64_t r = k * nb + i, b = b0 + i, row = k * B + b;
          float* drow = dp + r * H;
          const float* cr = car + r * H;
          for (int64_t j = 0; j < H; ++j) drow[j] = cr[j];
          if (gk[k].defined()) {
            const float* go = fp(gk[k]) + (t * B + b) * H;
            for (int64_t j = 0; j < H; ++j) drow[j] += go[j];
          }
          if (gl.defined() && t == T - 1) {
            const float* ga = fp(gl) + row * H;
            for (int64_t j = 0; j < H; ++j) drow[j] += ga[j];
          }
          if (masked) row_mask(H, drow, hsp + ((k * T + t) * B + b) * H, clip);
          const float* hprev = t > 0 ? hsp + ((k * T + t - 1) * B + b) * H : h0p + row * H;
          float* o = out + ((k * T + t) * B + b) * 3 * H;
          row_bwd_a(H, drow, gp + row * 2 * H + H, cp + row * H, hprev, car + r * H,
                    dz + r * H, o + 2 * H, dr + r * 2 * H + H, o + H);
        }
      at::bmm_out(drh, dzc, w_c_t);
      for (int64_t k = 0; k < K; ++k)
        for (int64_t i = 0; i < nb; ++i) {
          const int64_t r = k * nb + i, b = b0 + i, row = k * B + b;
          const float* hprev = t > 0 ? hsp + ((k * T + t - 1) * B + b) * H : h0p + row * H;
          row_bwd_b(H, dx + r * H, gp + row * 2 * H, hprev, car + r * H, dr + r * 2 * H,
                    out + ((k * T + t) * B + b) * 3 * H);
        }
      carry.baddbmm_(dru, w_ru_t);
    }
    d_h0.narrow(1, b0, nb).copy_(carry);
  });
  if (!need_w) return {d_proj, d_h0};
  at::Tensor d_ru = d_proj.narrow(3, 0, 2 * H);
  at::Tensor d_c = d_proj.narrow(3, 2 * H, H);
  at::Tensor d_w_ru = at::bmm(h0.transpose(1, 2), d_ru.select(1, 0));
  if (T > 1) {
    at::Tensor hp = hs.narrow(1, 0, T - 1).reshape({K, (T - 1) * B, H});
    at::Tensor dq = d_ru.narrow(1, 1, T - 1).reshape({K, (T - 1) * B, 2 * H});
    d_w_ru.baddbmm_(hp.transpose(1, 2), dq);
  }
  at::Tensor d_w_c = at::bmm(rhs.reshape({K, T * B, H}).transpose(1, 2),
                             d_c.reshape({K, T * B, H}));
  return {d_proj, d_h0, d_w_ru, d_w_c};
}

// ------------------------------------------------------------------ controller loop
// One GRU step on a block of rows: xin [nb, 3H] (row stride xs) holds the input parts.
void step_fwd(const float* xin, int64_t xs, const at::Tensor& h_prev, const at::Tensor& w_ru,
              const at::Tensor& w_c, const at::Tensor& gates, const at::Tensor& rh,
              const at::Tensor& cand, const at::Tensor& h_new, float clip, bool do_clip) {
  const int64_t nb = h_prev.size(0), H = h_prev.size(1);
  at::Tensor g = gates, c = cand;
  at::mm_out(g, h_prev, w_ru);
  for (int64_t b = 0; b < nb; ++b)
    row_gates(H, fp(gates) + b * 2 * H, xin + b * xs, fp(h_prev) + b * H, fp(rh) + b * H);
  at::mm_out(c, rh, w_c);
  for (int64_t b = 0; b < nb; ++b)
    row_state(H, fp(cand) + b * H, xin + b * xs + 2 * H, fp(gates) + b * 2 * H + H,
              fp(h_prev) + b * H, fp(h_new) + b * H, do_clip, clip);
}

// Backward of one step on a block: dh is masked in place; writes d_xin (row stride 3H)
// and dh_prev.
void step_bwd(const at::Tensor& dh, const at::Tensor& gates, const at::Tensor& cand,
              const at::Tensor& h_prev, const at::Tensor& h_new, const at::Tensor& w_ru_t,
              const at::Tensor& w_c_t, float clip, bool masked, const at::Tensor& dzc,
              const at::Tensor& drh, const at::Tensor& dru, float* d_xin,
              const at::Tensor& dh_prev) {
  const int64_t nb = h_prev.size(0), H = h_prev.size(1);
  for (int64_t b = 0; b < nb; ++b) {
    float* drow = fp(dh) + b * H;
    if (masked) row_mask(H, drow, fp(h_new) + b * H, clip);
    row_bwd_a(H, drow, fp(gates) + b * 2 * H + H, fp(cand) + b * H, fp(h_prev) + b * H,
              fp(dh_prev) + b * H, fp(dzc) + b * H, d_xin + b * 3 * H + 2 * H,
              fp(dru) + b * 2 * H + H, d_xin + b * 3 * H + H);
  }
  at::Tensor x = drh, dp = dh_prev;
  at::mm_out(x, dzc, w_c_t);
  for (int64_t b = 0; b < nb; ++b)
    row_bwd_b(H, fp(drh) + b * H, fp(gates) + b * 2 * H, fp(h_prev) + b * H,
              fp(dh_prev) + b * H, fp(dru) + b * 2 * H, d_xin + b * 3 * H);
  dp.addmm_(dru, w_ru_t);
}

// Feedback to the controller from the factors f [nb, F]: fb_mode 1 = factors,
// 2 = Poisson rates exp(clip(f W + b)) (unclipped for the initial factors),
// 3 = Gaussian means (the first D columns of f W + b). lin receives f W + b.
void feedback(int64_t fb_mode, const at::Tensor& f, const at::Tensor& w_out,
              const at::Tensor& b_out, const at::Tensor& lin, const at::Tensor& fb,
              bool initial) {
  if (fb_mode == 1) {
    at::Tensor o = fb;
    o.copy_(f);
    return;
  }
  at::Tensor l = lin;
  at::addmm_out(l, b_out, f, w_out);
  const int64_t nb = fb.size(0), D = fb.size(1), W = lin.size(1);
  for (int64_t b = 0; b < nb; ++b) {
    const float* lp = fp(lin) + b * W;
    float* out = fp(fb) + b * D;
    for (int64_t j = 0; j < D; ++j) {
      const float v = lp[j];
      if (fb_mode == 3) out[j] = v;
      else out[j] = initial ? std::exp(v) : std::exp(std::min(std::max(v, -80.0f), 80.0f));
    }
  }
}

// Time step t of a [T, B, X] tensor restricted to rows [b0, b0 + nb): a contiguous block.
inline at::Tensor blk(const at::Tensor& x, int64_t t, int64_t b0, int64_t nb) {
  return x.select(0, t).narrow(0, b0, nb);
}
inline const float* blkp(const at::Tensor& x, int64_t t, int64_t b0) {
  return fp(x) + t * x.stride(0) + b0 * x.stride(1);
}

std::vector<at::Tensor> congen_fwd(
    const at::Tensor& cp, const c10::optional<at::Tensor>& keep_fb, const at::Tensor& w_fb,
    const at::Tensor& c0_in, const at::Tensor& w_ru_c, const at::Tensor& w_c_c,
    const at::Tensor& w_co, const at::Tensor& b_co, const at::Tensor& eps, bool sample,
    const at::Tensor& gp, const at::Tensor& w_u, const at::Tensor& g0_in,
    const at::Tensor& w_ru_g, const at::Tensor& w_c_g, const c10::optional<at::Tensor>& gen_keep,
    const at::Tensor& w_fac, int64_t fb_mode, const at::Tensor& w_out, const at::Tensor& b_out,
    double clip_d, bool train) {
  check_f32(cp, "cp");
  check_f32(gp, "gp");
  check_f32(eps, "eps");
  TORCH_CHECK(cp.stride(2) == 1 && gp.stride(2) == 1, "projections need a unit last stride");
  const int64_t T = cp.size(0), B = cp.size(1), C = c0_in.size(1), G = g0_in.size(1);
  const int64_t U = eps.size(2), F = w_fac.size(1);
  const int64_t NF = fb_mode == 0 ? 0 : w_fb.size(0);
  const int64_t LW = fb_mode >= 2 ? w_out.size(1) : 0;
  const float clip = static_cast<float>(clip_d);
  const bool clip_all = clip < 1.0f;
  auto opt = cp.options();
  const int64_t Ts = train ? T : 1;
  at::Tensor gs = at::empty({T, B, G}, opt), gd = at::empty({T, B, G}, opt);
  at::Tensor fac = at::empty({T, B, F}, opt), mv = at::empty({T, B, 2 * U}, opt);
  at::Tensor u = at::empty({T, B, U}, opt), cs = at::empty({T, B, C}, opt);
  at::Tensor c_gates = at::empty({Ts, B, 2 * C}, opt), c_cands = at::empty({Ts, B, C}, opt);
  at::Tensor c_rh = at::empty({Ts, B, C}, opt);
  at::Tensor g_gates = at::empty({Ts, B, 2 * G}, opt), g_cands = at::empty({Ts, B, G}, opt);
  at::Tensor g_rh = at::empty({Ts, B, G}, opt);
  at::Tensor fbk = at::empty({NF ? Ts : 0, B, NF}, opt);  // dropped feedback fed at step t
  at::Tensor fbv = at::empty({NF ? Ts : 0, B, NF}, opt);  // undropped feedback fed at step t
  at::Tensor lins = at::empty({LW ? Ts : 0, B, LW}, opt);  // its read-out pre-activation
  at::Tensor c0 = c0_in.contiguous(), g0 = g0_in.contiguous(), epsc = eps.contiguous();
  at::Tensor kfb, gk;
  if (keep_fb.has_value() && keep_fb->defined() && NF) kfb = keep_fb->contiguous();
  if (gen_keep.has_value() && gen_keep->defined()) gk = gen_keep->contiguous();
  for_row_blocks(B, [&](int64_t b0, int64_t b1) {
    const int64_t nb = b1 - b0;
    at::Tensor xc = at::empty({nb, 3 * C}, opt), xg = at::empty({nb, 3 * G}, opt);
    at::Tensor fb = at::empty({nb, NF}, opt), lin = at::empty({nb, LW}, opt);
    at::Tensor cg = at::empty({nb, 2 * C}, opt), cc = at::empty({nb, C}, opt),
               crh = at::empty({nb, C}, opt);
    at::Tensor gg = at::empty({nb, 2 * G}, opt), gc = at::empty({nb, G}, opt),
               grh = at::empty({nb, G}, opt);
    at::Tensor c0b = c0.narrow(0, b0, nb), g0b = g0.narrow(0, b0, nb);
    if (NF) feedback(fb_mode, at::mm(g0b, w_fac), w_out, b_out, lin, fb, true);
    if (NF && LW && train) blk(lins, 0, b0, nb).copy_(lin);
    for (int64_t t = 0; t < T; ++t) {
      const int64_t i = train ? t : 0;
      // Controller input: encoder part (precomputed) + dropped feedback @ w_fb.
      for (int64_t b = 0; b < nb; ++b)
        std::memcpy(fp(xc) + b * 3 * C, blkp(cp, t, b0 + b), sizeof(float) * 3 * C);
      if (NF) {
        at::Tensor fk = blk(fbk, i, b0, nb);
        float* fkp = fp(fk);
        const float* fbp = fp(fb);
        const float* kp = kfb.defined() ? blkp(kfb, t, b0) : nullptr;
        for (int64_t j = 0; j < nb * NF; ++j) fkp[j] = kp ? fbp[j] * kp[j] : fbp[j];
        if (train) blk(fbv, i, b0, nb).copy_(fb);
        xc.addmm_(fk, w_fb);
      }
      at::Tensor c_prev = t == 0 ? c0b : blk(cs, t - 1, b0, nb);
      at::Tensor c_now = blk(cs, t, b0, nb);
      step_fwd(fp(xc), 3 * C, c_prev, w_ru_c, w_c_c, train ? blk(c_gates, i, b0, nb) : cg,
               train ? blk(c_rh, i, b0, nb) : crh, train ? blk(c_cands, i, b0, nb) : cc, c_now,
               clip, t == 0 || clip_all);
      at::Tensor mvt = blk(mv, t, b0, nb);
      at::addmm_out(mvt, b_co, c_now, w_co);
      float* up = fp(u) + t * B * U + b0 * U;
      const float* mvp = fp(mvt);
      const float* ep = blkp(epsc, t, b0);
      for (int64_t b = 0; b < nb; ++b)
        for (int64_t j = 0; j < U; ++j) {
          const float mu = mvp[b * 2 * U + j], lv = mvp[b * 2 * U + U + j];
          up[b * U + j] = sample ? mu + std::exp(0.5f * lv) * ep[b * U + j] : mu;
        }
      // Generator input: precomputed part (biases, external inputs) + u @ w_u.
      for (int64_t b = 0; b < nb; ++b)
        std::memcpy(fp(xg) + b * 3 * G, blkp(gp, t, b0 + b), sizeof(float) * 3 * G);
      xg.addmm_(blk(u, t, b0, nb), w_u);
      at::Tensor g_prev = t == 0 ? g0b : blk(gs, t - 1, b0, nb);
      at::Tensor g_now = blk(gs, t, b0, nb);
      step_fwd(fp(xg), 3 * G, g_prev, w_ru_g, w_c_g, train ? blk(g_gates, i, b0, nb) : gg,
               train ? blk(g_rh, i, b0, nb) : grh, train ? blk(g_cands, i, b0, nb) : gc, g_now,
               clip, t == 0 || clip_all);
      at::Tensor gdt = blk(gd, t, b0, nb);
      float* gdp = fp(gdt);
      const float* gsp = fp(g_now);
      const float* kp = gk.defined() ? blkp(gk, t, b0) : nullptr;
      for (int64_t j = 0; j < nb * G; ++j) gdp[j] = kp ? gsp[j] * kp[j] : gsp[j];
      at::Tensor ft = blk(fac, t, b0, nb);
      at::mm_out(ft, gdt, w_fac);
      if (NF && t + 1 < T) {
        feedback(fb_mode, ft, w_out, b_out, lin, fb, false);
        if (train && LW) blk(lins, t + 1, b0, nb).copy_(lin);
      }
    }
  });
  if (!train) return {gs, gd, fac, mv, u};
  return {gs, gd, fac, mv, u, cs, c_gates, c_cands, c_rh, g_gates, g_cands, g_rh, fbk, fbv, lins};
}

// Backward of congen_fwd(train=true), the sequential part. Given the gradients of the
// factors and of [mu | logvar], returns d_xc [T,B,3C] (controller input pre-activations),
// d_xg [T,B,3G], d_mv [T,B,2U] (total), d_fac [T,B,F] (total, feedback included), d_lin
// [T,B,LW] (read-out pre-activation of the feedback, modes 2/3), d_c0 [B,C], d_g0 [B,G]
// (without the initial-feedback path) and d_f0 [B,F] (gradient of the initial factors).
std::vector<at::Tensor> congen_bwd(
    const c10::optional<at::Tensor>& g_fac, const c10::optional<at::Tensor>& g_mv,
    const c10::optional<at::Tensor>& keep_fb, const at::Tensor& w_fb, const at::Tensor& c0_in,
    const at::Tensor& w_ru_c, const at::Tensor& w_c_c, const at::Tensor& w_co,
    const at::Tensor& eps, bool sample, const at::Tensor& w_u, const at::Tensor& g0_in,
    const at::Tensor& w_ru_g, const at::Tensor& w_c_g, const c10::optional<at::Tensor>& gen_keep,
    const at::Tensor& w_fac, int64_t fb_mode, const at::Tensor& w_out, const at::Tensor& gs,
    const at::Tensor& mv, const at::Tensor& cs, const at::Tensor& c_gates,
    const at::Tensor& c_cands, const at::Tensor& g_gates, const at::Tensor& g_cands,
    const at::Tensor& fbv, const at::Tensor& lins, double clip_d) {
  const int64_t T = gs.size(0), B = gs.size(1), G = gs.size(2), C = cs.size(2);
  const int64_t U = mv.size(2) / 2, F = w_fac.size(1);
  const int64_t NF = fb_mode == 0 ? 0 : w_fb.size(0);
  const int64_t LW = fb_mode >= 2 ? w_out.size(1) : 0;
  const float clip = static_cast<float>(clip_d);
  const bool clip_all = clip < 1.0f;
  auto opt = gs.options();
  at::Tensor c0 = c0_in.contiguous(), g0 = g0_in.contiguous(), epsc = eps.contiguous();
  at::Tensor d_xc = at::empty({T, B, 3 * C}, opt), d_xg = at::empty({T, B, 3 * G}, opt);
  at::Tensor d_mv = at::empty({T, B, 2 * U}, opt), d_fac = at::empty({T, B, F}, opt);
  at::Tensor d_lin = at::zeros({LW ? T : 0, B, LW}, opt);
  at::Tensor d_c0 = at::empty({B, C}, opt), d_g0 = at::empty({B, G}, opt);
  at::Tensor d_f0 = at::zeros({B, F}, opt);
  at::Tensor w_ru_ct = w_ru_c.t(), w_c_ct = w_c_c.t(), w_ru_gt = w_ru_g.t(), w_c_gt = w_c_g.t();
  at::Tensor w_cot = w_co.t(), w_ut = w_u.t(), w_fact = w_fac.t();
  at::Tensor w_fbt = NF ? w_fb.t() : at::Tensor();
  at::Tensor w_outt = LW ? w_out.t() : at::Tensor();
  at::Tensor gfac, gmv, kfb, gk;
  if (g_fac.has_value() && g_fac->defined()) gfac = g_fac->contiguous();
  if (g_mv.has_value() && g_mv->defined()) gmv = g_mv->contiguous();
  if (keep_fb.has_value() && keep_fb->defined() && NF) kfb = keep_fb->contiguous();
  if (gen_keep.has_value() && gen_keep->defined()) gk = gen_keep->contiguous();
  for_row_blocks(B, [&](int64_t b0, int64_t b1) {
    const int64_t nb = b1 - b0;
    at::Tensor dc = at::zeros({nb, C}, opt), dg = at::zeros({nb, G}, opt);
    at::Tensor dc2 = at::empty({nb, C}, opt), dg2 = at::empty({nb, G}, opt);
    at::Tensor dfb = at::zeros({nb, NF}, opt);  // gradient of the feedback made at step t
    at::Tensor dzc_c = at::empty({nb, C}, opt), drh_c = at::empty({nb, C}, opt),
               dru_c = at::empty({nb, 2 * C}, opt);
    at::Tensor dzc_g = at::empty({nb, G}, opt), drh_g = at::empty({nb, G}, opt),
               dru_g = at::empty({nb, 2 * G}, opt);
    at::Tensor dgd = at::empty({nb, G}, opt), du = at::empty({nb, U}, opt);
    at::Tensor c0b = c0.narrow(0, b0, nb), g0b = g0.narrow(0, b0, nb);
    for (int64_t t = T - 1; t >= 0; --t) {
      // Factors: external gradient plus that of the feedback they made for step t+1.
      at::Tensor dft = blk(d_fac, t, b0, nb);
      if (gfac.defined()) dft.copy_(blk(gfac, t, b0, nb));
      else dft.zero_();
      if (NF && t + 1 < T) {
        if (fb_mode == 1) {
          dft.add_(dfb);
        } else {  // through the rates or means, then the read-out
          at::Tensor dlt = blk(d_lin, t + 1, b0, nb);
          const float* fv = blkp(fbv, t + 1, b0);
          const float* lv = blkp(lins, t + 1, b0);
          float* dl = fp(dlt);
          const float* db = fp(dfb);
          for (int64_t b = 0; b < nb; ++b)
            for (int64_t j = 0; j < NF; ++j) {
              const float g = db[b * NF + j];
              dl[b * LW + j] = fb_mode == 3 ? g
                                            : (std::fabs(lv[b * LW + j]) < 80.0f
                                                   ? g * fv[b * NF + j] : 0.0f);
            }
          dft.addmm_(dlt, w_outt);
        }
      }
      // Generator output dropout, then the generator step.
      at::mm_out(dgd, dft, w_fact);
      float* dgp = fp(dg);
      const float* dgdp = fp(dgd);
      const float* kp = gk.defined() ? blkp(gk, t, b0) : nullptr;
      for (int64_t j = 0; j < nb * G; ++j) dgp[j] += kp ? dgdp[j] * kp[j] : dgdp[j];
      at::Tensor g_prev = t == 0 ? g0b : blk(gs, t - 1, b0, nb);
      at::Tensor dxg = blk(d_xg, t, b0, nb);
      step_bwd(dg, blk(g_gates, t, b0, nb), blk(g_cands, t, b0, nb), g_prev,
               blk(gs, t, b0, nb), w_ru_gt, w_c_gt, clip, t == 0 || clip_all, dzc_g, drh_g,
               dru_g, fp(dxg), dg2);
      std::swap(dg, dg2);
      // u = mu + exp(lv/2) eps: gradients of mu and logvar.
      at::mm_out(du, dxg, w_ut);
      at::Tensor dmt = blk(d_mv, t, b0, nb);
      const float* dup = fp(du);
      const float* mvp = blkp(mv, t, b0);
      const float* ep = blkp(epsc, t, b0);
      const float* gm = gmv.defined() ? blkp(gmv, t, b0) : nullptr;
      float* dmv = fp(dmt);
      for (int64_t b = 0; b < nb; ++b)
        for (int64_t j = 0; j < U; ++j) {
          const int64_t m = b * 2 * U + j, l = m + U;
          const float d = dup[b * U + j];
          dmv[m] = (gm ? gm[m] : 0.0f) + d;
          float dl = gm ? gm[l] : 0.0f;
          if (sample) dl += d * 0.5f * std::exp(0.5f * mvp[l]) * ep[b * U + j];
          dmv[l] = dl;
        }
      dc.addmm_(dmt, w_cot);
      at::Tensor c_prev = t == 0 ? c0b : blk(cs, t - 1, b0, nb);
      at::Tensor dxc = blk(d_xc, t, b0, nb);
      step_bwd(dc, blk(c_gates, t, b0, nb), blk(c_cands, t, b0, nb), c_prev,
               blk(cs, t, b0, nb), w_ru_ct, w_c_ct, clip, t == 0 || clip_all, dzc_c, drh_c,
               dru_c, fp(dxc), dc2);
      std::swap(dc, dc2);
      if (NF) {  // the feedback fed at step t came from step t-1 (or the initial factors)
        at::mm_out(dfb, dxc, w_fbt);
        if (kfb.defined()) {
          float* p = fp(dfb);
          const float* k = blkp(kfb, t, b0);
          for (int64_t j = 0; j < nb * NF; ++j) p[j] *= k[j];
        }
      }
    }
    d_c0.narrow(0, b0, nb).copy_(dc);
    d_g0.narrow(0, b0, nb).copy_(dg);
    if (NF) {  // the initial feedback, from f0 = g0 w_fac (no dropout, unclipped rates)
      at::Tensor df0 = d_f0.narrow(0, b0, nb);
      if (fb_mode == 1) {
        df0.copy_(dfb);
      } else {
        at::Tensor dl0 = blk(d_lin, 0, b0, nb);
        const float* fv = blkp(fbv, 0, b0);
        const float* db = fp(dfb);
        float* dl = fp(dl0);
        for (int64_t b = 0; b < nb; ++b)
          for (int64_t j = 0; j < NF; ++j)
            dl[b * LW + j] = fb_mode == 3 ? db[b * NF + j] : db[b * NF + j] * fv[b * NF + j];
        df0.addmm_(dl0, w_outt);
      }
    }
  });
  return {d_xc, d_xg, d_mv, d_fac, d_lin, d_c0, d_g0, d_f0};
}

// ------------------------------------------------------------------ random numbers
// Counter-based generator: 64 random bits for (key, counter) by splitmix64 finalisation.
inline uint64_t mix(uint64_t key, uint64_t ctr) {
  uint64_t z = ctr * 0x9E3779B97F4A7C15ULL + key;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// out[i] = 1/kp where a uniform draw is < kp, else 0 (a scaled dropout keep mask). Each
// 64-bit draw gives two 32-bit uniforms (elements 2j and 2j + 1 use draw c + j).
void keep_mask_(at::Tensor out, int64_t key, int64_t counter, double kp) {
  check_f32(out, "out");
  TORCH_CHECK(out.is_contiguous(), "out must be contiguous");
  float* p = fp(out);
  const float scale = static_cast<float>(1.0 / kp);
  const uint64_t thr = static_cast<uint64_t>(std::min(kp, 1.0) * 4294967296.0);
  const uint64_t k = static_cast<uint64_t>(key), c = static_cast<uint64_t>(counter);
  const int64_t n = out.numel(), pairs = (n + 1) / 2;
  at::parallel_for(0, pairs, 1 << 15, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) {
      const uint64_t z = mix(k, c + j);
      const int64_t i = 2 * j;
      p[i] = (z & 0xFFFFFFFFULL) < thr ? scale : 0.0f;
      if (i + 1 < n) p[i + 1] = (z >> 32) < thr ? scale : 0.0f;
    }
  });
}

// Standard normal draws (Box-Muller, cosine branch), one per counter value.
void normal_(at::Tensor out, int64_t key, int64_t counter) {
  check_f32(out, "out");
  TORCH_CHECK(out.is_contiguous(), "out must be contiguous");
  float* p = fp(out);
  const uint64_t k = static_cast<uint64_t>(key), c = static_cast<uint64_t>(counter);
  at::parallel_for(0, out.numel(), 1 << 14, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const uint64_t z = mix(k, c + i);
      const double u1 = (static_cast<double>(z >> 32) + 0.5) * 2.3283064365386963e-10;
      const double u2 = static_cast<double>(z & 0xFFFFFFFFULL) * 2.3283064365386963e-10;
      p[i] = static_cast<float>(std::sqrt(-2.0 * std::log(u1)) *
                                std::cos(6.283185307179586 * u2));
    }
  });
}

// Keep large freed blocks in the heap instead of unmapping them: the scans allocate tens of
// MB of activations per step, and fresh mmap'd memory costs a page fault per 4 KB on first
// touch (about a fifth of a training step). Process-wide, so the engine calls it only when
// it trains or samples. Returns false where glibc's mallopt is unavailable.
bool keep_heap_memory() {
#if defined(__GLIBC__)
  const int big = 1 << 30;
  return mallopt(M_MMAP_THRESHOLD, big) == 1 && mallopt(M_TRIM_THRESHOLD, big) == 1;
#else
  return false;
#endif
}

}  // namespace

TORCH_LIBRARY(lfads_ext, m) {
  m.def("keep_heap_memory() -> bool", &keep_heap_memory);
  m.def("gru_fwd(Tensor proj, Tensor h0, Tensor w_ru, Tensor w_c, float clip, bool train) -> Tensor[]", &gru_fwd);
  m.def("gru_bwd(Tensor?[] grad_hs, Tensor? grad_last, Tensor h0, Tensor w_ru, Tensor w_c, Tensor hs, Tensor gates, Tensor cands, Tensor rhs, float clip, bool need_w) -> Tensor[]", &gru_bwd);
  m.def("congen_fwd(Tensor cp, Tensor? keep_fb, Tensor w_fb, Tensor c0, Tensor w_ru_c, Tensor w_c_c, Tensor w_co, Tensor b_co, Tensor eps, bool sample, Tensor gp, Tensor w_u, Tensor g0, Tensor w_ru_g, Tensor w_c_g, Tensor? gen_keep, Tensor w_fac, int fb_mode, Tensor w_out, Tensor b_out, float clip, bool train) -> Tensor[]", &congen_fwd);
  m.def("congen_bwd(Tensor? g_fac, Tensor? g_mv, Tensor? keep_fb, Tensor w_fb, Tensor c0, Tensor w_ru_c, Tensor w_c_c, Tensor w_co, Tensor eps, bool sample, Tensor w_u, Tensor g0, Tensor w_ru_g, Tensor w_c_g, Tensor? gen_keep, Tensor w_fac, int fb_mode, Tensor w_out, Tensor gs, Tensor mv, Tensor cs, Tensor c_gates, Tensor c_cands, Tensor g_gates, Tensor g_cands, Tensor fbv, Tensor lins, float clip) -> Tensor[]", &congen_bwd);
  m.def("keep_mask_(Tensor(a!) out, int key, int counter, float kp) -> ()", &keep_mask_);
  m.def("normal_(Tensor(a!) out, int key, int counter) -> ()", &normal_);
}
"""
