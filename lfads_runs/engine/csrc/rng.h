// Counter-based random numbers (dropout masks, standard normals).
#pragma once

#include "common.h"

namespace {

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
      p[i] = static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
    }
  });
}

}  // namespace
