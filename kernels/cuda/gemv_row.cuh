// The pieces both forms of the small-M gemv (gemv.cu: a warp per row, or persistent warps walking
// rows) build on: one warp's dot products of a weight row with the M rows of A, and what a warp
// writes for a row. Each lane issues kUnroll independent 16-byte loads of its row (non-caching:
// read once) and only then does the arithmetic: a warp keeps kUnroll x 512 bytes (4 KB) in flight,
// enough to cover the memory latency with the few warps a narrow matrix gives each SM (session 8
// call A: the loop form left ~1.7 TB/s). The next round's loads go out before this round's
// arithmetic, so a long row (down_proj's K = 8192) keeps streaming instead of stopping at each
// round (session 8 call B: 1.85 TB/s at M = 1); past a row's last round, the next row's first.
#pragma once

#include <cstdint>

#include "kernels/cuda/activations.cuh"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/gemv.h"
#include "kernels/cuda/gemv_io.cuh"

namespace tessera::cuda::gemv {

constexpr int kWarps = 4;
constexpr int kVec = 8;           // elements per 16-byte load
constexpr int kUnroll = 8;        // loads in flight per lane
constexpr int kStep = 32 * kVec;  // elements a warp covers per load

template <typename T>
__device__ __forceinline__ void unpack(float (&out)[kVec], const uint4& v) {
  const Pack<T, kVec> p = *reinterpret_cast<const Pack<T, kVec>*>(&v);
#pragma unroll
  for (int i = 0; i < kVec; ++i) out[i] = to_f32(p.x[i]);
}

template <typename T, int M>
__device__ __forceinline__ void accumulate(float (&acc)[M], const uint4& wraw, const T* a, int64_t lda, int k0) {
  float w[kVec];
  unpack<T>(w, wraw);
#pragma unroll
  for (int m = 0; m < M; ++m) {
    float av[kVec];
    load_f32<kVec>(av, a + m * lda + k0);
#pragma unroll
    for (int i = 0; i < kVec; ++i) acc[m] = fmaf(av[i], w[i], acc[m]);
  }
}

// Up to kUnroll loads of the row from k0 on, issued together.
template <typename T>
__device__ __forceinline__ void load_round(uint4 (&wraw)[kUnroll], const T* row, int k0, int k) {
#pragma unroll
  for (int u = 0; u < kUnroll; ++u)
    if (k0 + u * kStep < k) wraw[u] = load_streaming(row + k0 + u * kStep);
}

// The first round of a row's loads (the one row_dot expects in wraw).
template <typename T>
__device__ __forceinline__ void load_first_round(uint4 (&wraw)[kUnroll], const T* row, int k, int lane) {
  load_round(wraw, row, lane * kVec, k);
}

// The lanes' partial sums added across the warp (a fixed tree), the total in every lane.
template <int M>
__device__ __forceinline__ void warp_sum(float (&acc)[M]) {
#pragma unroll
  for (int m = 0; m < M; ++m)
    for (int mask = 16; mask > 0; mask /= 2) acc[m] += __shfl_xor_sync(0xffffffffu, acc[m], mask);
}

// acc[m] = row . a[m, :] over k elements, in every lane of the warp (a's rows lda apart), wraw
// holding the row's first round of loads (load_first_round), issued earlier (before the kernel
// waited for its predecessor, or during the previous row). With next_row (k elements too), its
// first round goes out with this row's last round's arithmetic and is in wraw on return. The
// order of the additions is fixed by k and the lane alone.
template <typename T, int M>
__device__ __forceinline__ void row_dot(float (&acc)[M], uint4 (&wraw)[kUnroll], const T* row, const T* a, int k,
                                        int64_t lda, int lane, const T* next_row = nullptr) {
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0.0f;
  int k0 = lane * kVec;
  uint4 next[kUnroll];
  while (true) {
    const int k1 = k0 + kUnroll * kStep;
    if (k1 < k) load_round(next, row, k1, k);
    else if (next_row) load_first_round(next, next_row, k, lane);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
      if (k0 + u * kStep < k) accumulate<T, M>(acc, wraw[u], a, lda, k0 + u * kStep);
    if (k1 >= k) break;
    k0 = k1;
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) wraw[u] = next[u];
  }
  if (next_row)
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) wraw[u] = next[u];
  warp_sum(acc);
}

// The rows of A the warps read: A itself, or (Input::kShared, the norm prologue) its normed copy
// in the block's dynamic shared memory (gemv_io.cuh). Every thread of the block calls it, once
// its first weight loads are in flight; it waits for the previous kernel.
template <typename T, typename Input>
__device__ __forceinline__ const T* staged_input(const Input& input, const T* a, int m, int k) {
  extern __shared__ __align__(16) unsigned char gemv_shared[];
  return input.stage(a, reinterpret_cast<T*>(gemv_shared), m, k);
}

// The weights of one launch, their rows stacked: weight i holds rows [end[i - 1], end[i]).
template <typename T, typename C>
struct Weights {
  const T* w[kGemvMaxWeights];
  C* c[kGemvMaxWeights];
  const C* bias[kGemvMaxWeights];      // null: none
  const C* residual[kGemvMaxWeights];  // null: none (gemv_io.cuh gemv_output)
  int end[kGemvMaxWeights];
  int count;

  __device__ int rows() const { return end[count - 1]; }
  // The weight holding stacked row `row` (< rows()).
  __device__ int weight_of(int row) const {
    int i = 0;
    while (row >= end[i]) ++i;
    return i;
  }
  __device__ int first_row(int i) const { return i == 0 ? 0 : end[i - 1]; }
  __device__ const T* row_data(int row, int k) const {
    const int i = weight_of(row);
    return w[i] + static_cast<int64_t>(row - first_row(i)) * k;
  }

  // Lane 0's part: output (m, row) of the weight holding stacked row `row`, for each m, from the
  // row's sums acc.
  template <int M>
  __device__ void store(int row, const float (&acc)[M], float alpha, float beta) const {
    const int i = weight_of(row), n = row - first_row(i), n_total = end[i] - first_row(i);
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const int64_t at = static_cast<int64_t>(m) * n_total + n;
      C* out = c[i] + at;
      const float prior = beta != 0.0f ? beta * to_f32(*out) : 0.0f;
      float y = alpha * acc[m] + prior;
      if (bias[i]) y += to_f32(bias[i][n]);
      *out = gemv_output<C>(y, residual[i], at);
    }
  }
};

// silu(g) * u as the plain ops give it: g and u rounded to T as the gemv stores them, silu(g)
// rounded as swiglu_forward rounds it.
template <typename T>
__device__ __forceinline__ T swiglu_value(float gate_sum, float up_sum) {
  const float g = round_as<T>(gate_sum), u = round_as<T>(up_sum);
  return from_f32<T>(round_as<T>(silu(g)) * u);
}

}  // namespace tessera::cuda::gemv
