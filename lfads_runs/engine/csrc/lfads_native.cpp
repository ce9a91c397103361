// Fused GRU layers, the controller -> generator loop, matrix-product tiles and a
// counter-based random generator for the LFADS engine (equations:
// shared/spec/lfads-model.md §2, §3.9-§3.12).
//
// Built on first use by lfads_runs/engine/_ext.py (plain g++, no Python headers) and
// loaded with torch.ops.load_library. Every batch row is an independent recurrence (only
// the weights are shared), so the rows are split into one block per thread and each block
// runs its whole sequence without synchronisation, its products in the register-blocked
// tiles of gemm.h (AVX-512 or AVX2; ATen where the compiler targets neither) and the
// elementwise work of a step in one loop; weight gradients are summed per thread.

#include <torch/library.h>

#include "common.h"
#include "gemm.h"
#include "rng.h"

#include <algorithm>
#include <mutex>
#include <utility>
#include <vector>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace {

// ------------------------------------------------------------------ input projections
// Input parts of gates for all steps at once (the controller's, from the encoders' states):
// out [K, R, N] = b[k] + x[k] w[k] for x [K, R, E], w [K, E, N], b [K, N]. One pass that
// writes each output once (baddbmm first fills the output with the broadcast bias).
at::Tensor lin_fwd(const at::Tensor& x_in, const at::Tensor& w_in, const at::Tensor& b_in) {
  check_f32(x_in, "x");
  TORCH_CHECK(x_in.dim() == 3, "x must be [K, R, E]");
  at::Tensor x = unit_cols(x_in) ? x_in : x_in.contiguous();
  const int64_t K = x.size(0), R = x.size(1), E = x.size(2);
  at::Tensor w = w_in.contiguous(), b = b_in.contiguous();
  const int64_t N = w.size(2);
  TORCH_CHECK(w.size(0) == K && w.size(1) == E && b.numel() == K * N, "lin_fwd: shapes differ");
  at::Tensor out = at::empty({K, R, N}, x.options());
  const int64_t sk = x.stride(0), sr = x.stride(1);
  for_row_blocks(R, [&](int64_t r0, int64_t r1) {
    for (int64_t k = 0; k < K; ++k)
      gemm_bias(r1 - r0, N, E, fp(x) + k * sk + r0 * sr, sr, fp(w) + k * E * N, N, fp(b) + k * N,
                fp(out) + (k * R + r0) * N, N);
  });
  return out;
}

// Backward of lin_fwd: dx [K, R, E] (when need_x), dw [K, E, N], db [K, N], in one pass over
// d [K, R, N] in chunks that stay in cache; each thread sums dw and db over its rows.
std::vector<at::Tensor> lin_bwd(const at::Tensor& d_in, const at::Tensor& x_in, const at::Tensor& w,
                                bool need_x) {
  at::Tensor d = d_in.contiguous(), x = unit_cols(x_in) ? x_in : x_in.contiguous();
  const int64_t K = d.size(0), R = d.size(1), N = d.size(2), E = x.size(2);
  at::Tensor w_t = w.transpose(1, 2).contiguous();  // [K, N, E]
  at::Tensor dx = need_x ? at::empty({K, R, E}, d.options()) : at::Tensor();
  const int64_t sk = x.stride(0), sr = x.stride(1);
  // Per thread: dw [K, E, N], then db [K, N].
  at::Tensor dwb =
      sum_row_blocks(R, R / 64, K * (E + 1) * N, [&](int64_t r0, int64_t nb, float* dw) {
        float* db = dw + K * E * N;
        for (int64_t c0 = r0; c0 < r0 + nb; c0 += 256) {
          const int64_t nr = std::min<int64_t>(256, r0 + nb - c0);
          for (int64_t k = 0; k < K; ++k) {
            const float* dk = fp(d) + (k * R + c0) * N;
            const float* xk = fp(x) + k * sk + c0 * sr;
            if (need_x)
              gemm(nr, E, N, dk, N, fp(w_t) + k * N * E, E, fp(dx) + (k * R + c0) * E, E, false);
            gemm_tn_serial(E, N, nr, xk, sr, dk, N, dw + k * E * N, N, true);
            float* dbk = db + k * N;
            for (int64_t i = 0; i < nr; ++i)
              for (int64_t j = 0; j < N; ++j) dbk[j] += dk[i * N + j];
          }
        }
      });
  at::Tensor dw_out = dwb.narrow(0, 0, K * E * N).view({K, E, N});
  at::Tensor db_out = dwb.narrow(0, K * E * N, K * N).view({K, N});
  if (!need_x) return {dw_out, db_out};
  return {dx, dw_out, db_out};
}

// ------------------------------------------------------------------ row kernels
// Gates: g <- sigmoid(g) over 2H (pre-activations in, r | u out), rh <- r * h.
inline void row_sigm_rh(int64_t H, float* __restrict__ g, const float* __restrict__ h,
                        float* __restrict__ rh) {
  for (int64_t j = 0; j < 2 * H; ++j) g[j] = sigm(g[j]);
  for (int64_t j = 0; j < H; ++j) rh[j] = g[j] * h[j];
}

// Candidate and new state: c <- tanh(c), h_new = u h + (1 - u) c (clipped if asked).
inline void row_update(int64_t H, float* __restrict__ c, const float* __restrict__ u,
                       const float* __restrict__ h, float* __restrict__ hn, bool do_clip,
                       float clip) {
  for (int64_t j = 0; j < H; ++j) {
    const float cc = tanh_(c[j]);
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
                      float* __restrict__ car, float* __restrict__ out_c,
                      float* __restrict__ out_u) {
  for (int64_t j = 0; j < H; ++j) {
    const float g = d[j];
    const float uu = u[j], cc = c[j];
    out_u[j] = g * (hprev[j] - cc) * uu * (1.0f - uu);
    out_c[j] = g * (1.0f - uu) * (1.0f - cc * cc);
    car[j] = g * uu;
  }
}

// Backward, after x = dzc W_c^T: reset-gate pre-activation gradient and the carry.
inline void row_bwd_b(int64_t H, const float* __restrict__ x, const float* __restrict__ r,
                      const float* __restrict__ hprev, float* __restrict__ car,
                      float* __restrict__ out_r) {
  for (int64_t j = 0; j < H; ++j) {
    const float rr = r[j];
    out_r[j] = x[j] * hprev[j] * rr * (1.0f - rr);
    car[j] += x[j] * rr;
  }
}

inline void row_mask(int64_t H, float* __restrict__ d, const float* __restrict__ h, float clip) {
  for (int64_t j = 0; j < H; ++j) d[j] = std::fabs(h[j]) < clip ? d[j] : 0.0f;
}

// One GRU step on nb rows. x [nb, 3H] (row stride xs) holds the input parts of [r | u | c];
// w_ru [H, 2H] and w_c [H, H] are contiguous. Writes the gates g [nb, 2H] (r | u after the
// sigmoid), rh = r * h_prev, the candidate c and h_new, all with contiguous rows.
void step_fwd(int64_t nb, int64_t H, const float* x, int64_t xs, const float* h_prev,
              const float* w_ru, const float* w_c, float* g, float* rh, float* c, float* h_new,
              float clip, bool do_clip) {
  for (int64_t b = 0; b < nb; ++b) std::memcpy(g + b * 2 * H, x + b * xs, sizeof(float) * 2 * H);
  gemm(nb, 2 * H, H, h_prev, H, w_ru, 2 * H, g, 2 * H, true);
  for (int64_t b = 0; b < nb; ++b) row_sigm_rh(H, g + b * 2 * H, h_prev + b * H, rh + b * H);
  for (int64_t b = 0; b < nb; ++b) std::memcpy(c + b * H, x + b * xs + 2 * H, sizeof(float) * H);
  gemm(nb, H, H, rh, H, w_c, H, c, H, true);
  for (int64_t b = 0; b < nb; ++b)
    row_update(H, c + b * H, g + b * 2 * H + H, h_prev + b * H, h_new + b * H, do_clip, clip);
}

// Backward of one step on nb rows: dh [nb, H] is masked in place (when asked); writes the
// input-part gradients d_x [nb, 3H] (row stride dxs) and dh_prev [nb, H]. w_ru_t [2H, H]
// and w_c_t [H, H] are the transposed weights (contiguous); drh is [nb, H] scratch.
void step_bwd(int64_t nb, int64_t H, float* dh, const float* g, const float* c, const float* h_prev,
              const float* h_new, const float* w_ru_t, const float* w_c_t, float clip, bool masked,
              float* drh, float* d_x, int64_t dxs, float* dh_prev) {
  for (int64_t b = 0; b < nb; ++b) {
    float* drow = dh + b * H;
    if (masked) row_mask(H, drow, h_new + b * H, clip);
    float* o = d_x + b * dxs;
    row_bwd_a(H, drow, g + b * 2 * H + H, c + b * H, h_prev + b * H, dh_prev + b * H, o + 2 * H,
              o + H);
  }
  gemm(nb, H, H, d_x + 2 * H, dxs, w_c_t, H, drh, H, false);
  for (int64_t b = 0; b < nb; ++b)
    row_bwd_b(H, drh + b * H, g + b * 2 * H, h_prev + b * H, dh_prev + b * H, d_x + b * dxs);
  gemm(nb, H, 2 * H, d_x, dxs, w_ru_t, H, dh_prev, H, true);
}

// ------------------------------------------------------------------ GRU layers
// K GRU recurrences of H units over the same input sequence x [T, B, E] (recurrence k
// reads it backwards when rev[k]), input projections fused in (spec §2):
//
//   [r^ | u^]_t = b_ru + [x_t | h_{t-1}] W_ru        W_ru [K, E+H, 2H], forget bias in b
//   c_t         = tanh(b_c + [x_t | r_t h_{t-1}] W_c)  W_c [K, E+H, H], b = [b_ru | b_c]
//   h_t         = clip(u_t h_{t-1} + (1 - u_t) c_t)
//
// so no [K, T, B, 3H] projection (or its gradient) goes through memory: per step a
// thread's rows of [x_t | h_{t-1}] sit in a small buffer, and in the backward pass the
// weight gradients are summed step by step from data still in cache. The clip can act
// on the first step only unless clip < 1 (h_t is a convex combination of h_{t-1} and
// |c_t| < 1). Returns hs [K, T, B, H] and, when train, gates [T, K, B, 2H] (r | u after
// the sigmoid) and cands [T, K, B, H].
struct LayerDims {
  int64_t K, T, B, E, H, D;
};

LayerDims layer_dims(const at::Tensor& x, c10::IntArrayRef rev, const at::Tensor& w_ru,
                     const at::Tensor& w_c, const at::Tensor& b, const at::Tensor& h0) {
  TORCH_CHECK(x.dim() == 3 && w_ru.dim() == 3 && w_c.dim() == 3, "gru_layer: bad ranks");
  LayerDims d{w_ru.size(0), x.size(0), x.size(1), x.size(2), w_c.size(2), 0};
  d.D = d.E + d.H;
  TORCH_CHECK(w_ru.size(1) == d.D && w_ru.size(2) == 2 * d.H,
              "gru_layer: W_ru must be [K, E+H, 2H]");
  TORCH_CHECK(w_c.size(0) == d.K && w_c.size(1) == d.D, "gru_layer: W_c must be [K, E+H, H]");
  TORCH_CHECK(b.numel() == d.K * 3 * d.H, "gru_layer: b must be [K, 3H]");
  TORCH_CHECK(h0.dim() == 3 && h0.size(0) == d.K && h0.size(1) == d.B && h0.size(2) == d.H,
              "gru_layer: h0 must be [K, B, H]");
  TORCH_CHECK(static_cast<int64_t>(rev.size()) == d.K, "gru_layer: one rev flag per recurrence");
  return d;
}

// Rows [b0, b0 + nb) of [x_t | h]: x row stride sxb, h contiguous [nb, H].
inline void fill_xh(float* xh, int64_t nb, int64_t E, int64_t H, const float* x, int64_t sxb,
                    const float* h) {
  const int64_t D = E + H;
  for (int64_t i = 0; i < nb; ++i) {
    if (E) std::memcpy(xh + i * D, x + i * sxb, sizeof(float) * E);
    std::memcpy(xh + i * D + E, h + i * H, sizeof(float) * H);
  }
}

std::vector<at::Tensor> gru_layer_fwd(const at::Tensor& x_in, c10::IntArrayRef rev,
                                      const at::Tensor& w_ru_in, const at::Tensor& w_c_in,
                                      const at::Tensor& b_in, const at::Tensor& h0_in,
                                      double clip_d, bool train) {
  check_f32(x_in, "x");
  check_f32(h0_in, "h0");
  const LayerDims d = layer_dims(x_in, rev, w_ru_in, w_c_in, b_in, h0_in);
  const int64_t K = d.K, T = d.T, B = d.B, E = d.E, H = d.H, D = d.D;
  at::Tensor x = unit_cols(x_in) ? x_in : x_in.contiguous();
  at::Tensor w_ru = w_ru_in.contiguous(), w_c = w_c_in.contiguous(), b = b_in.contiguous();
  at::Tensor h0 = h0_in.contiguous();
  const float clip = static_cast<float>(clip_d);
  const bool clip_all = clip < 1.0f;
  auto opt = h0.options();
  at::Tensor hs = at::empty({K, T, B, H}, opt);
  at::Tensor gates = train ? at::empty({T, K, B, 2 * H}, opt) : at::Tensor();
  at::Tensor cands = train ? at::empty({T, K, B, H}, opt) : at::Tensor();
  const float *xp = fp(x), *h0p = fp(h0), *wru = fp(w_ru), *wc = fp(w_c), *bp = fp(b);
  float* hsp = fp(hs);
  float *gtp = train ? fp(gates) : nullptr, *cdp = train ? fp(cands) : nullptr;
  const int64_t sxt = x.stride(0), sxb = x.stride(1);
  for_row_blocks(B, [&](int64_t b0, int64_t b1) {
    const int64_t nb = b1 - b0;
    std::vector<float> xh(nb * D), scratch(train ? 0 : 3 * nb * H);
    for (int64_t t = 0; t < T; ++t) {
      const bool do_clip = (t == 0) || clip_all;
      for (int64_t k = 0; k < K; ++k) {
        const int64_t tr = rev[k] ? T - 1 - t : t;
        const float* hprev = t > 0 ? hsp + ((k * T + t - 1) * B + b0) * H : h0p + (k * B + b0) * H;
        float* g = train ? gtp + ((t * K + k) * B + b0) * 2 * H : scratch.data();
        float* c = train ? cdp + ((t * K + k) * B + b0) * H : scratch.data() + 2 * nb * H;
        const float* bk = bp + k * 3 * H;
        fill_xh(xh.data(), nb, E, H, xp + tr * sxt + b0 * sxb, sxb, hprev);
        gemm_bias(nb, 2 * H, D, xh.data(), D, wru + k * D * 2 * H, 2 * H, bk, g, 2 * H);
        for (int64_t i = 0; i < nb; ++i)  // r * h_prev replaces h_prev in the buffer
          row_sigm_rh(H, g + i * 2 * H, hprev + i * H, xh.data() + i * D + E);
        gemm_bias(nb, H, D, xh.data(), D, wc + k * D * H, H, bk + 2 * H, c, H);
        float* hn = hsp + ((k * T + t) * B + b0) * H;
        for (int64_t i = 0; i < nb; ++i)
          row_update(H, c + i * H, g + i * 2 * H + H, hprev + i * H, hn + i * H, do_clip, clip);
      }
    }
  });
  if (!train) return {hs};
  return {hs, gates, cands};
}

// Backward of gru_layer_fwd(train=true). grad_hs: per recurrence an optional [T, B, H]
// gradient of its states; grad_last: optional [K, B, H] gradient of the final states.
// Returns d_h0 [K, B, H], d_w_ru, d_w_c, d_b [K, 3H] and, when need_x, d_x [T, B, E].
std::vector<at::Tensor> gru_layer_bwd(const c10::List<c10::optional<at::Tensor>>& grad_hs,
                                      const c10::optional<at::Tensor>& grad_last,
                                      const at::Tensor& x_in, c10::IntArrayRef rev,
                                      const at::Tensor& w_ru, const at::Tensor& w_c,
                                      const at::Tensor& b, const at::Tensor& h0_in,
                                      const at::Tensor& hs, const at::Tensor& gates,
                                      const at::Tensor& cands, double clip_d, bool need_x) {
  const LayerDims d = layer_dims(x_in, rev, w_ru, w_c, b, h0_in);
  const int64_t K = d.K, T = d.T, B = d.B, E = d.E, H = d.H, D = d.D;
  at::Tensor x = unit_cols(x_in) ? x_in : x_in.contiguous();
  at::Tensor h0 = h0_in.contiguous();
  const float clip = static_cast<float>(clip_d);
  const bool clip_all = clip < 1.0f;
  auto opt = hs.options();
  // Transposed weight blocks, contiguous: x and h rows of W_ru and W_c.
  at::Tensor wt_ru_x = w_ru.narrow(1, 0, E).transpose(1, 2).contiguous();  // [K, 2H, E]
  at::Tensor wt_ru_h = w_ru.narrow(1, E, H).transpose(1, 2).contiguous();  // [K, 2H, H]
  at::Tensor wt_c_x = w_c.narrow(1, 0, E).transpose(1, 2).contiguous();    // [K, H, E]
  at::Tensor wt_c_h = w_c.narrow(1, E, H).transpose(1, 2).contiguous();    // [K, H, H]
  std::vector<at::Tensor> gk(K);
  for (int64_t k = 0; k < K && k < static_cast<int64_t>(grad_hs.size()); ++k) {
    c10::optional<at::Tensor> g = grad_hs.get(k);
    if (g.has_value() && g->defined()) gk[k] = g->contiguous();
  }
  at::Tensor gl;
  if (grad_last.has_value() && grad_last->defined()) gl = grad_last->contiguous();
  at::Tensor d_x = need_x ? at::zeros({T, B, E}, opt) : at::Tensor();
  at::Tensor d_h0 = at::empty({K, B, H}, opt);
  const float *xp = fp(x), *h0p = fp(h0), *hsp = fp(hs), *gtp = fp(gates), *cdp = fp(cands);
  const int64_t sxt = x.stride(0), sxb = x.stride(1);
  // Per thread, partial sums: d_w_ru [K, D, 2H], then d_w_c [K, D, H], then d_b [K, 3H].
  const int64_t n_ru = K * D * 2 * H, n_c = K * D * H;
  at::Tensor sums =
      sum_row_blocks(B, B, n_ru + n_c + K * 3 * H, [&](int64_t b0, int64_t nb, float* part) {
        std::vector<float> carry(K * nb * H, 0.0f), dh(nb * H), dpre(nb * 3 * H), xh(nb * D);
        std::vector<float> drh(nb * H);
        for (int64_t t = T - 1; t >= 0; --t) {
          const bool masked = (t == 0) || clip_all;
          for (int64_t k = 0; k < K; ++k) {
            const int64_t tr = rev[k] ? T - 1 - t : t;
            float* car = carry.data() + k * nb * H;
            float* dhp = dh.data();
            for (int64_t i = 0; i < nb * H; ++i) dhp[i] = car[i];
            if (gk[k].defined()) {
              const float* go = fp(gk[k]) + (t * B + b0) * H;
              for (int64_t i = 0; i < nb * H; ++i) dhp[i] += go[i];
            }
            if (gl.defined() && t == T - 1) {
              const float* ga = fp(gl) + (k * B + b0) * H;
              for (int64_t i = 0; i < nb * H; ++i) dhp[i] += ga[i];
            }
            const float* hprev =
                t > 0 ? hsp + ((k * T + t - 1) * B + b0) * H : h0p + (k * B + b0) * H;
            const float* hnew = hsp + ((k * T + t) * B + b0) * H;
            const float* g = gtp + ((t * K + k) * B + b0) * 2 * H;
            const float* c = cdp + ((t * K + k) * B + b0) * H;
            float* dp = dpre.data();
            for (int64_t i = 0; i < nb; ++i) {
              if (masked) row_mask(H, dhp + i * H, hnew + i * H, clip);
              row_bwd_a(H, dhp + i * H, g + i * 2 * H + H, c + i * H, hprev + i * H, car + i * H,
                        dp + i * 3 * H + 2 * H, dp + i * 3 * H + H);
            }
            gemm(nb, H, H, dp + 2 * H, 3 * H, fp(wt_c_h) + k * H * H, H, drh.data(), H, false);
            for (int64_t i = 0; i < nb; ++i)
              row_bwd_b(H, drh.data() + i * H, g + i * 2 * H, hprev + i * H, car + i * H,
                        dp + i * 3 * H);
            gemm(nb, H, 2 * H, dp, 3 * H, fp(wt_ru_h) + k * 2 * H * H, H, car, H, true);
            if (need_x && E) {
              float* dxr = fp(d_x) + (tr * B + b0) * E;
              gemm(nb, E, 2 * H, dp, 3 * H, fp(wt_ru_x) + k * 2 * H * E, E, dxr, E, true);
              gemm(nb, E, H, dp + 2 * H, 3 * H, fp(wt_c_x) + k * H * E, E, dxr, E, true);
            }
            // Weight and bias gradients of this step: [x | h_prev]^T d[r|u], [x | rh]^T d[c].
            fill_xh(xh.data(), nb, E, H, xp + tr * sxt + b0 * sxb, sxb, hprev);
            gemm_tn_serial(D, 2 * H, nb, xh.data(), D, dp, 3 * H, part + k * D * 2 * H, 2 * H,
                           true);
            for (int64_t i = 0; i < nb; ++i) {
              float* rh = xh.data() + i * D + E;
              const float* r = g + i * 2 * H;
              for (int64_t j = 0; j < H; ++j) rh[j] *= r[j];
            }
            gemm_tn_serial(D, H, nb, xh.data(), D, dp + 2 * H, 3 * H, part + n_ru + k * D * H, H,
                           true);
            float* pb = part + n_ru + n_c + k * 3 * H;
            for (int64_t i = 0; i < nb; ++i)
              for (int64_t j = 0; j < 3 * H; ++j) pb[j] += dp[i * 3 * H + j];
          }
        }
        for (int64_t k = 0; k < K; ++k)
          std::memcpy(fp(d_h0) + (k * B + b0) * H, carry.data() + k * nb * H,
                      sizeof(float) * nb * H);
      });
  at::Tensor d_w_ru = sums.narrow(0, 0, n_ru).view({K, D, 2 * H});
  at::Tensor d_w_c = sums.narrow(0, n_ru, n_c).view({K, D, H});
  at::Tensor d_b = sums.narrow(0, n_ru + n_c, K * 3 * H).view({K, 3 * H});
  if (!need_x) return {d_h0, d_w_ru, d_w_c, d_b};
  return {d_h0, d_w_ru, d_w_c, d_b, d_x};
}

// ------------------------------------------------------------------ posterior averages
// Rows per chunk of gen_poisson_avg: 48, 96 and 192 timed alike (1 thread, loaded machine),
// all faster than whole row blocks, whose buffers outgrow the L2 cache.
constexpr int64_t kAvgChunk = 96;

// Sample-and-average without a controller (no gradients, no dropout): the generator
// (gru_layer_fwd's step, one recurrence), its factors f = h W_fac and the Poisson read-out
// lin = f W_out + b_out (W_out [0, 0]: identity), with each trial's rep consecutive rows
// (posterior samples) reduced as they are computed, so no [T, B, .] state, factor or rate
// tensor goes through memory. x [T, Bt, E] (external inputs, E may be 0) and counts
// [T, Bt, N] have one row per trial; h0 [Bt * rep, H]. Returns avg [T, Bt, H + F + N]
// (the means over each trial's rows of h, f and the rates exp(lin) clamped to [lo, hi])
// and ll [Bt * rep], sum over steps and neurons of counts * lin - exp(lin) per row.
std::vector<at::Tensor> gen_poisson_avg(const at::Tensor& x_in, const at::Tensor& w_ru_in,
                                        const at::Tensor& w_c_in, const at::Tensor& b_in,
                                        const at::Tensor& h0_in, const at::Tensor& w_fac_in,
                                        const at::Tensor& w_out_in, const at::Tensor& b_out_in,
                                        const at::Tensor& counts, double clip_d, double lo_d,
                                        double hi_d, int64_t rep) {
  check_f32(x_in, "x");
  check_f32(h0_in, "h0");
  check_f32(counts, "counts");
  TORCH_CHECK(x_in.dim() == 3 && counts.dim() == 3 && h0_in.dim() == 2 && rep >= 1,
              "gen_poisson_avg: x, counts must be [T, Bt, .], h0 [B, H]");
  const int64_t T = x_in.size(0), Bt = x_in.size(1), E = x_in.size(2), H = h0_in.size(1);
  const int64_t B = Bt * rep, D = E + H, F = w_fac_in.size(1);
  const bool ident = w_out_in.numel() == 0;
  const int64_t N = ident ? F : w_out_in.size(1);
  TORCH_CHECK(h0_in.size(0) == B, "gen_poisson_avg: h0 must have Bt * rep rows");
  TORCH_CHECK(w_ru_in.size(0) == D && w_ru_in.size(1) == 2 * H && w_c_in.size(0) == D &&
                  w_c_in.size(1) == H && b_in.numel() == 3 * H && w_fac_in.size(0) == H,
              "gen_poisson_avg: W_ru must be [E+H, 2H], W_c [E+H, H], b [3H], W_fac [H, F]");
  TORCH_CHECK(ident || (w_out_in.size(0) == F && b_out_in.numel() == N),
              "gen_poisson_avg: W_out must be [F, N] and b_out [N]");
  TORCH_CHECK(counts.size(0) == T && counts.size(1) == Bt && counts.size(2) == N,
              "gen_poisson_avg: counts must be [T, Bt, N]");
  at::Tensor x = unit_cols(x_in) ? x_in : x_in.contiguous();
  at::Tensor cn = unit_cols(counts) ? counts : counts.contiguous();
  at::Tensor w_ru = w_ru_in.contiguous(), w_c = w_c_in.contiguous(), b = b_in.contiguous();
  at::Tensor h0 = h0_in.contiguous(), w_fac = w_fac_in.contiguous();
  at::Tensor w_out = w_out_in.contiguous(), b_out = b_out_in.contiguous();
  const float clip = static_cast<float>(clip_d), lo = static_cast<float>(lo_d),
              hi = static_cast<float>(hi_d);
  const bool clip_all = clip < 1.0f;
  const int64_t X = H + F + N;
  const float *xp = fp(x), *cp = fp(cn), *h0p = fp(h0), *wru = fp(w_ru), *wc = fp(w_c), *bp = fp(b),
              *wf = fp(w_fac), *wo = ident ? nullptr : fp(w_out), *bo = ident ? nullptr : fp(b_out);
  const int64_t sxt = x.stride(0), sxb = x.stride(1), sct = cn.stride(0), scb = cn.stride(1);
  at::Tensor ll = at::empty({B}, h0.options());
  float* llp = fp(ll);
  // Each block sums its rows into its own [T, its trials, X] buffer; the buffers are added
  // in row order afterwards, so the result does not depend on which thread ran which block.
  std::mutex mu;
  std::vector<std::pair<int64_t, std::vector<double>>> parts;
  for_row_blocks(B, [&](int64_t b0, int64_t b1) {
    const int64_t tr0 = b0 / rep, ntr = (b1 - 1) / rep + 1 - tr0;
    std::vector<double> acc(T * ntr * X, 0.0);
    // Rows in chunks that run all their steps with every buffer in cache (the chunk's
    // rows are independent recurrences, so the order changes no result).
    const int64_t cb = std::min<int64_t>(b1 - b0, kAvgChunk);
    std::vector<double> lls(cb * N);
    std::vector<float> xh(cb * D), g(cb * 2 * H), c(cb * H), h(cb * H), hn(cb * H), f(cb * F);
    std::vector<float> lbuf(ident ? 0 : cb * N);
    for (int64_t c0 = b0; c0 < b1; c0 += cb) {
      const int64_t nb = std::min(cb, b1 - c0);
      std::fill(lls.begin(), lls.end(), 0.0);
      std::memcpy(h.data(), h0p + c0 * H, sizeof(float) * nb * H);
      for (int64_t t = 0; t < T; ++t) {
        for (int64_t i = 0; i < nb; ++i) {
          const int64_t j = (c0 + i) / rep;
          if (E) std::memcpy(xh.data() + i * D, xp + t * sxt + j * sxb, sizeof(float) * E);
          std::memcpy(xh.data() + i * D + E, h.data() + i * H, sizeof(float) * H);
        }
        gemm_bias(nb, 2 * H, D, xh.data(), D, wru, 2 * H, bp, g.data(), 2 * H);
        for (int64_t i = 0; i < nb; ++i)  // r * h_prev replaces h_prev in the buffer
          row_sigm_rh(H, g.data() + i * 2 * H, h.data() + i * H, xh.data() + i * D + E);
        gemm_bias(nb, H, D, xh.data(), D, wc, H, bp + 2 * H, c.data(), H);
        const bool do_clip = (t == 0) || clip_all;
        for (int64_t i = 0; i < nb; ++i)
          row_update(H, c.data() + i * H, g.data() + i * 2 * H + H, h.data() + i * H,
                     hn.data() + i * H, do_clip, clip);
        std::swap(h, hn);
        gemm(nb, F, H, h.data(), H, wf, F, f.data(), F, false);
        const float* lin = f.data();
        if (!ident) {
          gemm_bias(nb, N, F, f.data(), F, wo, N, bo, lbuf.data(), N);
          lin = lbuf.data();
        }
        for (int64_t i = 0; i < nb; ++i) {
          const int64_t j = (c0 + i) / rep;
          double* a = acc.data() + (t * ntr + j - tr0) * X;
          const float *hr = h.data() + i * H, *fr = f.data() + i * F, *lr = lin + i * N;
          const float* xr = cp + t * sct + j * scb;
          for (int64_t k = 0; k < H; ++k) a[k] += hr[k];
          for (int64_t k = 0; k < F; ++k) a[H + k] += fr[k];
          // Per neuron, not a running sum: a float reduction would not vectorise.
          double* lr_acc = lls.data() + i * N;
          for (int64_t k = 0; k < N; ++k) {
            const float e = vexp(lr[k]);
            lr_acc[k] += xr[k] * lr[k] - e;
            a[H + F + k] += std::min(std::max(e, lo), hi);
          }
        }
      }
      for (int64_t i = 0; i < nb; ++i) {
        double v = 0.0;
        for (int64_t k = 0; k < N; ++k) v += lls[i * N + k];
        llp[c0 + i] = static_cast<float>(v);
      }
    }
    std::lock_guard<std::mutex> lock(mu);
    parts.emplace_back(b0, std::move(acc));
  });
  std::sort(parts.begin(), parts.end(),
            [](const auto& p, const auto& q) { return p.first < q.first; });
  std::vector<double> sum(T * Bt * X, 0.0);
  for (const auto& [b0, acc] : parts) {
    const int64_t tr0 = b0 / rep, ntr = static_cast<int64_t>(acc.size()) / (T * X);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t j = 0; j < ntr * X; ++j) sum[(t * Bt + tr0) * X + j] += acc[(t * ntr) * X + j];
  }
  at::Tensor avg = at::empty({T, Bt, X}, h0.options());
  float* ap = fp(avg);
  for (int64_t i = 0; i < T * Bt * X; ++i) ap[i] = static_cast<float>(sum[i] / rep);
  return {avg, ll};
}

// ------------------------------------------------------------------ controller loop
// Feedback to the controller from the factors f [nb, F]: fb_mode 1 = factors,
// 2 = Poisson rates exp(clip(f W + b)) (unclipped for the initial factors),
// 3 = Gaussian means (the first NF columns of f W + b). lin [nb, LW] receives f W + b.
void feedback(int64_t fb_mode, int64_t nb, int64_t F, int64_t NF, int64_t LW, const float* f,
              const float* w_out, const float* b_out, float* lin, float* fb, bool initial) {
  if (fb_mode == 1) {
    std::memcpy(fb, f, sizeof(float) * nb * F);
    return;
  }
  gemm_bias(nb, LW, F, f, F, w_out, LW, b_out, lin, LW);
  for (int64_t b = 0; b < nb; ++b)
    for (int64_t j = 0; j < NF; ++j) {
      const float v = lin[b * LW + j];
      if (fb_mode == 3)
        fb[b * NF + j] = v;
      else
        fb[b * NF + j] = initial ? std::exp(v) : std::exp(std::min(std::max(v, -80.0f), 80.0f));
    }
}

// Rows [b0, ...) of step t in a contiguous [T, B, X] tensor (X = size(2)).
inline float* step_rows(const at::Tensor& x, int64_t t, int64_t b0) {
  return fp(x) + (t * x.size(1) + b0) * x.size(2);
}
inline const float* opt_rows(const at::Tensor& x, int64_t t, int64_t b0) {
  return x.defined() ? step_rows(x, t, b0) : nullptr;
}

std::vector<at::Tensor> congen_fwd(
    const at::Tensor& cp, const c10::optional<at::Tensor>& keep_fb, const at::Tensor& w_fb,
    const at::Tensor& c0_in, const at::Tensor& w_ru_c, const at::Tensor& w_c_c,
    const at::Tensor& w_co, const at::Tensor& b_co, const at::Tensor& eps, bool sample,
    const at::Tensor& gp, const at::Tensor& w_u, const at::Tensor& g0_in, const at::Tensor& w_ru_g,
    const at::Tensor& w_c_g, const c10::optional<at::Tensor>& gen_keep, const at::Tensor& w_fac,
    int64_t fb_mode, const at::Tensor& w_out, const at::Tensor& b_out, double clip_d, bool train,
    int64_t rep) {
  check_f32(cp, "cp");
  check_f32(gp, "gp");
  check_f32(eps, "eps");
  TORCH_CHECK(unit_cols(cp) && unit_cols(gp), "projections need a unit last stride");
  // rep > 1: cp and gp have one row per trial, which stands for rep consecutive rows
  // (posterior samples) of the batch; row b reads their row b / rep.
  const int64_t T = cp.size(0), B = eps.size(1), C = c0_in.size(1), G = g0_in.size(1);
  TORCH_CHECK(rep >= 1 && cp.size(1) * rep == B && gp.size(1) * rep == B,
              "congen_fwd: cp and gp need B / rep rows");
  const int64_t U = eps.size(2), F = w_fac.size(1);
  const int64_t NF = fb_mode == 0 ? 0 : w_fb.size(0);
  const int64_t LW = fb_mode >= 2 ? w_out.size(1) : 0;
  const float clip = static_cast<float>(clip_d);
  const bool clip_all = clip < 1.0f;
  auto opt = cp.options();
  const int64_t Ts = train ? T : 1;
  at::Tensor gs = at::empty({T, B, G}, opt);
  at::Tensor fac = at::empty({T, B, F}, opt), mv = at::empty({T, B, 2 * U}, opt);
  // Controller states: every step for the backward pass; without it the last two suffice.
  at::Tensor u = at::empty({T, B, U}, opt), cs = at::empty({train ? T : 2, B, C}, opt);
  at::Tensor c_gates = at::empty({Ts, B, 2 * C}, opt), c_cands = at::empty({Ts, B, C}, opt);
  at::Tensor c_rh = at::empty({Ts, B, C}, opt);
  at::Tensor g_gates = at::empty({Ts, B, 2 * G}, opt), g_cands = at::empty({Ts, B, G}, opt);
  at::Tensor g_rh = at::empty({Ts, B, G}, opt);
  at::Tensor fbk = at::empty({NF ? Ts : 0, B, NF}, opt);   // dropped feedback fed at step t
  at::Tensor fbv = at::empty({NF ? Ts : 0, B, NF}, opt);   // undropped feedback fed at step t
  at::Tensor lins = at::empty({LW ? Ts : 0, B, LW}, opt);  // its read-out pre-activation
  at::Tensor c0 = c0_in.contiguous(), g0 = g0_in.contiguous(), epsc = eps.contiguous();
  at::Tensor wruc = w_ru_c.contiguous(), wcc = w_c_c.contiguous(), wrug = w_ru_g.contiguous();
  at::Tensor wcg = w_c_g.contiguous(), wfb = w_fb.contiguous(), wco = w_co.contiguous();
  at::Tensor wu = w_u.contiguous(), wfac = w_fac.contiguous(), wout = w_out.contiguous();
  at::Tensor bco = b_co.contiguous(), bout = b_out.contiguous();
  at::Tensor kfb, gk;
  if (keep_fb.has_value() && keep_fb->defined() && NF) kfb = keep_fb->contiguous();
  if (gen_keep.has_value() && gen_keep->defined()) gk = gen_keep->contiguous();
  // Without dropout and gradients the dropped-out states are the states themselves (no
  // copy; an autograd function keeps two distinct outputs).
  at::Tensor gd = gk.defined() || train ? at::empty({T, B, G}, opt) : gs;
  const int64_t cs0 = cp.stride(0), cs1 = cp.stride(1), gs0 = gp.stride(0), gs1 = gp.stride(1);
  for_row_blocks(B, [&](int64_t b0, int64_t b1) {
    const int64_t nb = b1 - b0;
    std::vector<float> xc(nb * 3 * C), xg(nb * 3 * G), fb(nb * NF), lin(nb * LW);
    std::vector<float> sc(train ? 0 : 4 * nb * C), sg(train ? 0 : 4 * nb * G);
    const float* c0b = fp(c0) + b0 * C;
    const float* g0b = fp(g0) + b0 * G;
    if (NF) {
      std::vector<float> f0(nb * F);
      gemm(nb, F, G, g0b, G, fp(wfac), F, f0.data(), F, false);
      feedback(fb_mode, nb, F, NF, LW, f0.data(), fp(wout), fp(bout), lin.data(), fb.data(), true);
      if (LW && train) std::memcpy(step_rows(lins, 0, b0), lin.data(), sizeof(float) * nb * LW);
    }
    for (int64_t t = 0; t < T; ++t) {
      const int64_t i = train ? t : 0;
      const bool do_clip = t == 0 || clip_all;
      // Controller input: encoder part (precomputed) + dropped feedback @ w_fb.
      for (int64_t b = 0; b < nb; ++b)
        std::memcpy(xc.data() + b * 3 * C, fp(cp) + t * cs0 + (b0 + b) / rep * cs1,
                    sizeof(float) * 3 * C);
      if (NF) {
        float* fk = step_rows(fbk, i, b0);
        const float* kp = opt_rows(kfb, t, b0);
        for (int64_t j = 0; j < nb * NF; ++j) fk[j] = kp ? fb[j] * kp[j] : fb[j];
        if (train) std::memcpy(step_rows(fbv, i, b0), fb.data(), sizeof(float) * nb * NF);
        gemm(nb, 3 * C, NF, fk, NF, fp(wfb), 3 * C, xc.data(), 3 * C, true);
      }
      const float* c_prev = t == 0 ? c0b : step_rows(cs, train ? t - 1 : (t - 1) & 1, b0);
      float* c_now = step_rows(cs, train ? t : t & 1, b0);
      step_fwd(nb, C, xc.data(), 3 * C, c_prev, fp(wruc), fp(wcc),
               train ? step_rows(c_gates, i, b0) : sc.data(),
               train ? step_rows(c_rh, i, b0) : sc.data() + 2 * nb * C,
               train ? step_rows(c_cands, i, b0) : sc.data() + 3 * nb * C, c_now, clip, do_clip);
      float* mvt = step_rows(mv, t, b0);
      gemm_bias(nb, 2 * U, C, c_now, C, fp(wco), 2 * U, fp(bco), mvt, 2 * U);
      float* up = step_rows(u, t, b0);
      const float* ep = step_rows(epsc, t, b0);
      for (int64_t b = 0; b < nb; ++b)
        for (int64_t j = 0; j < U; ++j) {
          const float mu = mvt[b * 2 * U + j], lv = mvt[b * 2 * U + U + j];
          up[b * U + j] = sample ? mu + std::exp(0.5f * lv) * ep[b * U + j] : mu;
        }
      // Generator input: precomputed part (biases, external inputs) + u @ w_u.
      for (int64_t b = 0; b < nb; ++b)
        std::memcpy(xg.data() + b * 3 * G, fp(gp) + t * gs0 + (b0 + b) / rep * gs1,
                    sizeof(float) * 3 * G);
      gemm(nb, 3 * G, U, up, U, fp(wu), 3 * G, xg.data(), 3 * G, true);
      const float* g_prev = t == 0 ? g0b : step_rows(gs, t - 1, b0);
      float* g_now = step_rows(gs, t, b0);
      step_fwd(nb, G, xg.data(), 3 * G, g_prev, fp(wrug), fp(wcg),
               train ? step_rows(g_gates, i, b0) : sg.data(),
               train ? step_rows(g_rh, i, b0) : sg.data() + 2 * nb * G,
               train ? step_rows(g_cands, i, b0) : sg.data() + 3 * nb * G, g_now, clip, do_clip);
      float* gdt = step_rows(gd, t, b0);
      const float* kp = opt_rows(gk, t, b0);
      if (kp)
        for (int64_t j = 0; j < nb * G; ++j) gdt[j] = g_now[j] * kp[j];
      else if (gdt != g_now)
        std::memcpy(gdt, g_now, sizeof(float) * nb * G);
      float* ft = step_rows(fac, t, b0);
      gemm(nb, F, G, gdt, G, fp(wfac), F, ft, F, false);
      if (NF && t + 1 < T) {
        feedback(fb_mode, nb, F, NF, LW, ft, fp(wout), fp(bout), lin.data(), fb.data(), false);
        if (train && LW)
          std::memcpy(step_rows(lins, t + 1, b0), lin.data(), sizeof(float) * nb * LW);
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
  // transposed weights, contiguous for the products
  at::Tensor w_ru_ct = w_ru_c.t().contiguous(), w_c_ct = w_c_c.t().contiguous();
  at::Tensor w_ru_gt = w_ru_g.t().contiguous(), w_c_gt = w_c_g.t().contiguous();
  at::Tensor w_cot = w_co.t().contiguous(), w_ut = w_u.t().contiguous();
  at::Tensor w_fact = w_fac.t().contiguous();
  at::Tensor w_fbt = NF ? w_fb.t().contiguous() : at::Tensor();
  at::Tensor w_outt = LW ? w_out.t().contiguous() : at::Tensor();
  at::Tensor gfac, gmv, kfb, gk;
  if (g_fac.has_value() && g_fac->defined()) gfac = g_fac->contiguous();
  if (g_mv.has_value() && g_mv->defined()) gmv = g_mv->contiguous();
  if (keep_fb.has_value() && keep_fb->defined() && NF) kfb = keep_fb->contiguous();
  if (gen_keep.has_value() && gen_keep->defined()) gk = gen_keep->contiguous();
  for_row_blocks(B, [&](int64_t b0, int64_t b1) {
    const int64_t nb = b1 - b0;
    std::vector<float> dc(nb * C, 0.0f), dg(nb * G, 0.0f), dc2(nb * C), dg2(nb * G);
    std::vector<float> dfb(nb * NF, 0.0f);  // gradient of the feedback made at step t
    std::vector<float> drh_c(nb * C), drh_g(nb * G), dgd(nb * G), du(nb * U);
    const float* c0b = fp(c0) + b0 * C;
    const float* g0b = fp(g0) + b0 * G;
    for (int64_t t = T - 1; t >= 0; --t) {
      const bool masked = t == 0 || clip_all;
      // Factors: external gradient plus that of the feedback they made for step t+1.
      float* dft = step_rows(d_fac, t, b0);
      if (gfac.defined())
        std::memcpy(dft, step_rows(gfac, t, b0), sizeof(float) * nb * F);
      else
        std::fill(dft, dft + nb * F, 0.0f);
      if (NF && t + 1 < T) {
        if (fb_mode == 1) {
          for (int64_t j = 0; j < nb * F; ++j) dft[j] += dfb[j];
        } else {  // through the rates or means, then the read-out
          float* dl = step_rows(d_lin, t + 1, b0);
          const float* fv = step_rows(fbv, t + 1, b0);
          const float* lv = step_rows(lins, t + 1, b0);
          for (int64_t b = 0; b < nb; ++b)
            for (int64_t j = 0; j < NF; ++j) {
              const float g = dfb[b * NF + j];
              dl[b * LW + j] =
                  fb_mode == 3 ? g
                               : (std::fabs(lv[b * LW + j]) < 80.0f ? g * fv[b * NF + j] : 0.0f);
            }
          gemm(nb, F, LW, dl, LW, fp(w_outt), F, dft, F, true);
        }
      }
      // Generator output dropout, then the generator step.
      gemm(nb, G, F, dft, F, fp(w_fact), G, dgd.data(), G, false);
      const float* kp = opt_rows(gk, t, b0);
      for (int64_t j = 0; j < nb * G; ++j) dg[j] += kp ? dgd[j] * kp[j] : dgd[j];
      const float* g_prev = t == 0 ? g0b : step_rows(gs, t - 1, b0);
      float* dxg = step_rows(d_xg, t, b0);
      step_bwd(nb, G, dg.data(), step_rows(g_gates, t, b0), step_rows(g_cands, t, b0), g_prev,
               step_rows(gs, t, b0), fp(w_ru_gt), fp(w_c_gt), clip, masked, drh_g.data(), dxg,
               3 * G, dg2.data());
      std::swap(dg, dg2);
      // u = mu + exp(lv/2) eps: gradients of mu and logvar.
      gemm(nb, U, 3 * G, dxg, 3 * G, fp(w_ut), U, du.data(), U, false);
      float* dmv = step_rows(d_mv, t, b0);
      const float* mvp = step_rows(mv, t, b0);
      const float* ep = step_rows(epsc, t, b0);
      const float* gm = opt_rows(gmv, t, b0);
      for (int64_t b = 0; b < nb; ++b)
        for (int64_t j = 0; j < U; ++j) {
          const int64_t m = b * 2 * U + j, l = m + U;
          const float d = du[b * U + j];
          dmv[m] = (gm ? gm[m] : 0.0f) + d;
          float dl = gm ? gm[l] : 0.0f;
          if (sample) dl += d * 0.5f * std::exp(0.5f * mvp[l]) * ep[b * U + j];
          dmv[l] = dl;
        }
      gemm(nb, C, 2 * U, dmv, 2 * U, fp(w_cot), C, dc.data(), C, true);
      const float* c_prev = t == 0 ? c0b : step_rows(cs, t - 1, b0);
      float* dxc = step_rows(d_xc, t, b0);
      step_bwd(nb, C, dc.data(), step_rows(c_gates, t, b0), step_rows(c_cands, t, b0), c_prev,
               step_rows(cs, t, b0), fp(w_ru_ct), fp(w_c_ct), clip, masked, drh_c.data(), dxc,
               3 * C, dc2.data());
      std::swap(dc, dc2);
      if (NF) {  // the feedback fed at step t came from step t-1 (or the initial factors)
        gemm(nb, NF, 3 * C, dxc, 3 * C, fp(w_fbt), NF, dfb.data(), NF, false);
        const float* k = opt_rows(kfb, t, b0);
        if (k)
          for (int64_t j = 0; j < nb * NF; ++j) dfb[j] *= k[j];
      }
    }
    std::memcpy(fp(d_c0) + b0 * C, dc.data(), sizeof(float) * nb * C);
    std::memcpy(fp(d_g0) + b0 * G, dg.data(), sizeof(float) * nb * G);
    if (NF) {  // the initial feedback, from f0 = g0 w_fac (no dropout, unclipped rates)
      float* df0 = fp(d_f0) + b0 * F;
      if (fb_mode == 1) {
        std::memcpy(df0, dfb.data(), sizeof(float) * nb * F);
      } else {
        float* dl = step_rows(d_lin, 0, b0);
        const float* fv = step_rows(fbv, 0, b0);
        for (int64_t b = 0; b < nb; ++b)
          for (int64_t j = 0; j < NF; ++j)
            dl[b * LW + j] = fb_mode == 3 ? dfb[b * NF + j] : dfb[b * NF + j] * fv[b * NF + j];
        gemm(nb, F, LW, dl, LW, fp(w_outt), F, df0, F, true);
      }
    }
  });
  return {d_xc, d_xg, d_mv, d_fac, d_lin, d_c0, d_g0, d_f0};
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
  m.def("simd() -> str", &simd);
  m.def(
      "congen_fwd(Tensor cp, Tensor? keep_fb, Tensor w_fb, Tensor c0, Tensor w_ru_c, Tensor w_c_c, "
      "Tensor w_co, Tensor b_co, Tensor eps, bool sample, Tensor gp, Tensor w_u, Tensor g0, Tensor "
      "w_ru_g, Tensor w_c_g, Tensor? gen_keep, Tensor w_fac, int fb_mode, Tensor w_out, Tensor "
      "b_out, float clip, bool train, int rep=1) -> Tensor[]",
      &congen_fwd);
  m.def(
      "congen_bwd(Tensor? g_fac, Tensor? g_mv, Tensor? keep_fb, Tensor w_fb, Tensor c0, Tensor "
      "w_ru_c, Tensor w_c_c, Tensor w_co, Tensor eps, bool sample, Tensor w_u, Tensor g0, Tensor "
      "w_ru_g, Tensor w_c_g, Tensor? gen_keep, Tensor w_fac, int fb_mode, Tensor w_out, Tensor gs, "
      "Tensor mv, Tensor cs, Tensor c_gates, Tensor c_cands, Tensor g_gates, Tensor g_cands, "
      "Tensor fbv, Tensor lins, float clip) -> Tensor[]",
      &congen_bwd);
  m.def("mt(Tensor a, Tensor b) -> Tensor", &mt);
  m.def(
      "gru_layer_fwd(Tensor x, int[] rev, Tensor w_ru, Tensor w_c, Tensor b, Tensor h0, float "
      "clip, bool train) -> Tensor[]",
      &gru_layer_fwd);
  m.def(
      "gru_layer_bwd(Tensor?[] grad_hs, Tensor? grad_last, Tensor x, int[] rev, Tensor w_ru, "
      "Tensor w_c, Tensor b, Tensor h0, Tensor hs, Tensor gates, Tensor cands, float clip, bool "
      "need_x) -> Tensor[]",
      &gru_layer_bwd);
  m.def(
      "gen_poisson_avg(Tensor x, Tensor w_ru, Tensor w_c, Tensor b, Tensor h0, Tensor w_fac, "
      "Tensor w_out, Tensor b_out, Tensor counts, float clip, float lo, float hi, int rep) -> "
      "Tensor[]",
      &gen_poisson_avg);
  m.def("lin_fwd(Tensor x, Tensor w, Tensor b) -> Tensor", &lin_fwd);
  m.def("lin_bwd(Tensor d, Tensor x, Tensor w, bool need_x) -> Tensor[]", &lin_bwd);
  m.def("keep_mask_(Tensor(a!) out, int key, int counter, float kp) -> ()", &keep_mask_);
  m.def("normal_(Tensor(a!) out, int key, int counter) -> ()", &normal_);
}
