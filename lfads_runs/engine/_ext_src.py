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
  m.def("keep_mask_(Tensor(a!) out, int key, int counter, float kp) -> ()", &keep_mask_);
  m.def("normal_(Tensor(a!) out, int key, int counter) -> ()", &normal_);
}
"""
