// Matrix products of the kernels (register-blocked AVX-512/AVX2 tiles, else ATen).
#pragma once

#include "common.h"

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <array>
#include <string>
#include <utility>
#include <vector>

namespace {

// ------------------------------------------------------------------ matrix products
// gemm: C (+)= A B with row-major A [M, Kd] (row stride lda), B [Kd, N] (row stride ldb)
// and C [M, N] (row stride ldc): the per-step products of the recurrences, a few hundred
// thousand multiply-adds each. gemm_tn_serial: C (+)= A^T B for A [R, M] and B [R, N] with
// R large (weight gradients: sums over all steps and trials).
//
// MKL runs float32 products on its AVX2 code path on AMD processors, and pays a call
// overhead that matters at these sizes. Register-blocked tiles here (6 rows x 4 vectors
// with AVX-512, 6 rows x 2 vectors with AVX2, the last vector masked) are about twice as
// fast with AVX-512 and on par with AVX2; without either the products go to ATen.
#if defined(__AVX512F__)
#define LFADS_TILES 1
struct Vec {
  using T = __m512;
  using Mask = __mmask16;
  static constexpr int kWidth = 16, kPerTile = 4;
  static Mask mask(int n) { return static_cast<Mask>((1u << n) - 1u); }
  static Mask full() { return static_cast<Mask>(0xFFFF); }
  static T zero() { return _mm512_setzero_ps(); }
  static T set1(float x) { return _mm512_set1_ps(x); }
  static T load(const float* p) { return _mm512_loadu_ps(p); }
  static T load(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  static void store(float* p, T v, Mask m) { _mm512_mask_storeu_ps(p, m, v); }
  static T fma(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  static T add(T a, T b) { return _mm512_add_ps(a, b); }
};
#elif defined(__AVX2__) && defined(__FMA__)
#define LFADS_TILES 1
struct Vec {
  using T = __m256;
  using Mask = __m256i;
  static constexpr int kWidth = 8, kPerTile = 2;
  static Mask mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static Mask full() { return _mm256_set1_epi32(-1); }
  static T zero() { return _mm256_setzero_ps(); }
  static T set1(float x) { return _mm256_set1_ps(x); }
  static T load(const float* p) { return _mm256_loadu_ps(p); }
  static T load(const float* p, Mask m) { return _mm256_maskload_ps(p, m); }
  static void store(float* p, T v, Mask m) { _mm256_maskstore_ps(p, m, v); }
  static T fma(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static T add(T a, T b) { return _mm256_add_ps(a, b); }
};
#endif

// Which product kernels this build uses (reported by the engine and its benchmarks).
std::string simd() {
#if defined(__AVX512F__)
  return "avx512";
#elif defined(LFADS_TILES)
  return "avx2";
#else
  return "aten";
#endif
}

#if defined(LFADS_TILES)
constexpr int kTileRows = 6, kTileCols = Vec::kWidth * Vec::kPerTile;

// C tile [R, NQ vectors] (+)= sum_k A(r, k) B[k, :], with A(r, k) = A[r * sai + k * sak];
// the last vector is masked. bias (when given, and not acc) is added to every row.
template <int R, int NQ>
void gemm_tile(int64_t Kd, const float* __restrict__ A, int64_t sai, int64_t sak,
               const float* __restrict__ B, int64_t ldb, float* __restrict__ C, int64_t ldc,
               Vec::Mask last, bool acc, const float* __restrict__ bias) {
  constexpr int W = Vec::kWidth;
  Vec::T c[R][NQ];
#pragma GCC unroll 4
  for (int q = 0; q < NQ; ++q) {
    const Vec::T init =
        bias ? (q + 1 < NQ ? Vec::load(bias + W * q) : Vec::load(bias + W * q, last)) : Vec::zero();
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) c[r][q] = init;
  }
  for (int64_t k = 0; k < Kd; ++k) {
    const float* b = B + k * ldb;
    const float* a = A + k * sak;
    Vec::T bv[NQ];
#pragma GCC unroll 4
    for (int q = 0; q < NQ; ++q)
      bv[q] = q + 1 < NQ ? Vec::load(b + W * q) : Vec::load(b + W * q, last);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const Vec::T av = Vec::set1(a[r * sai]);
#pragma GCC unroll 4
      for (int q = 0; q < NQ; ++q) c[r][q] = Vec::fma(av, bv[q], c[r][q]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int q = 0; q < NQ; ++q) {
      const Vec::Mask m = q + 1 < NQ ? Vec::full() : last;
      float* p = C + r * ldc + W * q;
      Vec::T v = c[r][q];
      if (acc) v = Vec::add(v, Vec::load(p, m));
      Vec::store(p, v, m);
    }
}

using TileFn = void (*)(int64_t, const float*, int64_t, int64_t, const float*, int64_t, float*,
                        int64_t, Vec::Mask, bool, const float*);
template <int R, int... Q>
constexpr std::array<TileFn, sizeof...(Q)> tile_row(std::integer_sequence<int, Q...>) {
  return {gemm_tile<R, Q + 1>...};
}
template <int... R>
constexpr std::array<std::array<TileFn, Vec::kPerTile>, sizeof...(R)> tile_table(
    std::integer_sequence<int, R...>) {
  return {tile_row<R + 1>(std::make_integer_sequence<int, Vec::kPerTile>())...};
}
constexpr auto kTiles = tile_table(std::make_integer_sequence<int, kTileRows>());

// All tiles of C [M, N] over Kd terms; A(i, k) = A[i * sai + k * sak].
void gemm_tiles(int64_t M, int64_t N, int64_t Kd, const float* A, int64_t sai, int64_t sak,
                const float* B, int64_t ldb, float* C, int64_t ldc, bool acc,
                const float* bias = nullptr) {
  for (int64_t j0 = 0; j0 < N; j0 += kTileCols) {
    const int64_t nc = std::min<int64_t>(kTileCols, N - j0);
    const int nq = static_cast<int>((nc + Vec::kWidth - 1) / Vec::kWidth);
    const Vec::Mask last = Vec::mask(static_cast<int>(nc - Vec::kWidth * (nq - 1)));
    for (int64_t i0 = 0; i0 < M; i0 += kTileRows) {
      const int r = static_cast<int>(std::min<int64_t>(kTileRows, M - i0));
      kTiles[r - 1][nq - 1](Kd, A + i0 * sai, sai, sak, B + j0, ldb, C + i0 * ldc + j0, ldc, last,
                            acc, bias ? bias + j0 : nullptr);
    }
  }
}

void gemm(int64_t M, int64_t N, int64_t Kd, const float* A, int64_t lda, const float* B,
          int64_t ldb, float* C, int64_t ldc, bool acc) {
  if (M > 0 && N > 0) gemm_tiles(M, N, Kd, A, lda, 1, B, ldb, C, ldc, acc);
}

// C = bias + A B (bias [N] added to every row).
void gemm_bias(int64_t M, int64_t N, int64_t Kd, const float* A, int64_t lda, const float* B,
               int64_t ldb, const float* bias, float* C, int64_t ldc) {
  if (M > 0 && N > 0) gemm_tiles(M, N, Kd, A, lda, 1, B, ldb, C, ldc, false, bias);
}

// C (+)= A^T B in chunks of rows whose A and B parts stay in L2 (one thread's share).
void gemm_tn_serial(int64_t M, int64_t N, int64_t R, const float* A, int64_t lda, const float* B,
                    int64_t ldb, float* C, int64_t ldc, bool acc) {
  constexpr int64_t kChunk = 256;
  for (int64_t r0 = 0; r0 < R; r0 += kChunk) {
    const int64_t nr = std::min(kChunk, R - r0);
    gemm_tiles(M, N, nr, A + r0 * lda, 1, lda, B + r0 * ldb, ldb, C, ldc, acc || r0 > 0);
  }
}
#else
at::Tensor view2d(const float* p, int64_t rows, int64_t cols, int64_t ld) {
  return at::from_blob(const_cast<float*>(p), {rows, cols}, {ld, 1},
                       at::TensorOptions().dtype(at::kFloat));
}

void gemm(int64_t M, int64_t N, int64_t Kd, const float* A, int64_t lda, const float* B,
          int64_t ldb, float* C, int64_t ldc, bool acc) {
  if (M <= 0 || N <= 0) return;
  at::Tensor a = view2d(A, M, Kd, lda), b = view2d(B, Kd, N, ldb), c = view2d(C, M, N, ldc);
  if (acc)
    c.addmm_(a, b);
  else
    at::mm_out(c, a, b);
}

void gemm_bias(int64_t M, int64_t N, int64_t Kd, const float* A, int64_t lda, const float* B,
               int64_t ldb, const float* bias, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) std::memcpy(C + i * ldc, bias, sizeof(float) * N);
  gemm(M, N, Kd, A, lda, B, ldb, C, ldc, true);
}

void gemm_tn_serial(int64_t M, int64_t N, int64_t R, const float* A, int64_t lda, const float* B,
                    int64_t ldb, float* C, int64_t ldc, bool acc) {
  at::Tensor a = view2d(A, R, M, lda).t(), b = view2d(B, R, N, ldb), c = view2d(C, M, N, ldc);
  if (acc)
    c.addmm_(a, b);
  else
    at::mm_out(c, a, b);
}
#endif

// Sums over rows cut into blocks: rows [0, R) are split into about min(4 x threads,
// max_blocks) (at least 1) equal blocks of whole 6-row tiles and f(r0, nr, acc) adds the share of
// rows [r0, r0 + nr) into acc [per] (zeroed). Threads take the next block not yet taken
// (for_row_blocks says why), and the blocks' sums are added in block order, so the result does not
// depend on which thread ran which block. Returns the sum [per].
template <typename F>
at::Tensor sum_row_blocks(int64_t R, int64_t max_blocks, int64_t per, const F& f) {
  const int64_t nt = std::max<int64_t>(1, at::get_num_threads());
  const int64_t want = std::max<int64_t>(1, std::min<int64_t>(nt > 1 ? 4 * nt : 1, max_blocks));
  int64_t grain = std::max<int64_t>(1, (R + want - 1) / want);
  if (want > 1 && grain > 6) grain = (grain + 5) / 6 * 6;  // whole 6-row tiles
  const int64_t nblk = (R + grain - 1) / grain;
  std::vector<float> part(nblk * per, 0.0f);
  std::atomic<int64_t> next{0};
  at::parallel_for(0, std::min(nt, nblk), 1, [&](int64_t, int64_t) {
    at::NoGradGuard no_grad;
    for (int64_t p = next.fetch_add(1); p < nblk; p = next.fetch_add(1)) {
      const int64_t r0 = p * grain, nr = std::min(grain, R - r0);
      if (nr > 0) f(r0, nr, part.data() + p * per);
    }
  });
  at::Tensor out = at::empty({per}, at::TensorOptions().dtype(at::kFloat));
  float* o = fp(out);
  for (int64_t i = 0; i < per; ++i) {
    float v = 0.0f;
    for (int64_t p = 0; p < nblk; ++p) v += part[p * per + i];
    o[i] = v;
  }
  return out;
}

// a^T b for a [R, M] and b [R, N] (unit column strides): a weight gradient.
at::Tensor mt(const at::Tensor& a_in, const at::Tensor& b_in) {
  check_f32(a_in, "a");
  check_f32(b_in, "b");
  TORCH_CHECK(a_in.dim() == 2 && b_in.dim() == 2 && a_in.size(0) == b_in.size(0),
              "mt needs a [R, M] and b [R, N]");
  at::Tensor a = unit_cols(a_in) ? a_in : a_in.contiguous();
  at::Tensor b = unit_cols(b_in) ? b_in : b_in.contiguous();
  const int64_t R = a.size(0), M = a.size(1), N = b.size(1);
  const int64_t lda = a.stride(0), ldb = b.stride(0);
  return sum_row_blocks(R, R / 64, M * N,
                        [&](int64_t r0, int64_t nr, float* acc) {
                          gemm_tn_serial(M, N, nr, fp(a) + r0 * lda, lda, fp(b) + r0 * ldb, ldb,
                                         acc, N, true);
                        })
      .view({M, N});
}

}  // namespace
