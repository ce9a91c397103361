// Helpers of every kernel: vectorisable exp/sigmoid/tanh, checks, row blocks.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>

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

// Run f(b0, b1) on blocks of batch rows. With several threads there are about four
// blocks per thread (of whole 6-row tiles), and each thread takes the next block not yet
// taken: when other busy processes share the cores and the system suspends one of our
// threads, the others do its remaining blocks instead of waiting for it (a static split
// made every extra thread slower than none on a shared machine). Rows are independent
// recurrences, so the split does not change any result.
template <typename F>
void for_row_blocks(int64_t B, const F& f) {
  const int64_t nt = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), B));
  // Worker threads do not inherit the caller's grad mode; the kernels never record autograd.
  if (nt == 1 || at::in_parallel_region()) {
    at::NoGradGuard no_grad;
    f(0, B);
    return;
  }
  const int64_t rows = std::max<int64_t>(12, (B + 4 * nt - 1) / (4 * nt) + 5) / 6 * 6;
  const int64_t blocks = (B + rows - 1) / rows;
  std::atomic<int64_t> next{0};
  at::parallel_for(0, std::min(nt, blocks), 1, [&](int64_t, int64_t) {
    at::NoGradGuard no_grad;
    for (int64_t i = next.fetch_add(1); i < blocks; i = next.fetch_add(1))
      f(i * rows, std::min(B, (i + 1) * rows));
  });
}

inline float* fp(const at::Tensor& t) { return t.data_ptr<float>(); }

// Elements of a row are adjacent (a last dimension of size 1 may have any stride).
inline bool unit_cols(const at::Tensor& t) { return t.size(-1) == 1 || t.stride(-1) == 1; }

}  // namespace
