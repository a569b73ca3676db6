// RMSNorm rows as the rmsnorm kernels (rmsnorm.cu) compute them, for kernels that norm their own
// input: how many threads rmsnorm.cu gives a row, and rmsnorm_rows_to_shared, which gives bit for
// bit rmsnorm_forward's rows with a block of any size (a gemv's norm prologue, gemv_io.cuh).
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/cuda_common.cuh"

namespace tessera::cuda {

// Threads of rmsnorm.cu's block for a row of d elements: a warp multiple near the row length, so
// short rows (q_norm's head_dim) leave few threads idle and long rows take a few per thread.
__host__ __device__ inline int rmsnorm_row_threads(int64_t d) {
  return static_cast<int>(std::min<int64_t>(512, (d + 31) / 32 * 32));
}

constexpr int kNormMaxRows = 4;          // rows rmsnorm_rows_to_shared takes (a gemv's M)
constexpr int kNormMaxWarps = 512 / 32;  // warps of the rmsnorm block it plays

// The shared memory rmsnorm_rows_to_shared needs for m rows of k elements of `element_bytes`:
// the rows, then the norm weight as f32.
inline int64_t rmsnorm_rows_shared_bytes(int64_t m, int64_t k, int64_t element_bytes) {
  return m * k * element_bytes + k * static_cast<int64_t>(sizeof(float));
}

// h [m, k] (shared memory, 16-byte aligned, rmsnorm_rows_shared_bytes long) = rmsnorm_forward of
// x [m, k] (global, k % 8 == 0, 16-byte aligned) with `weight` [k] (T or float) and eps, bit for
// bit what rmsnorm.cu writes: virtual thread v of its block (v < rmsnorm_row_threads(k)) sums e^2
// over e = x[j], j = v, v + threads, ... in order; the block adds the sums by block_sum's tree
// (each warp's by shuffles, then the warps' in one warp); rstd = rsqrtf(sum / k + eps);
// h = round(x * rstd) * w. Here thread t of the block (blockDim.x a multiple of 32) plays virtual
// threads t, t + blockDim.x, ... Every thread of the block calls it. It loads the weight (fixed),
// then waits for the previous kernel (which may have written x: programmatic dependent launch),
// and returns with h ready for all.
template <typename T, typename W>
__device__ void rmsnorm_rows_to_shared(T* h, const T* x, const W* weight, int m, int k, float eps) {
  __shared__ float warp_sums[kNormMaxRows][kNormMaxWarps];
  __shared__ float rstd[kNormMaxRows];
  float* w = reinterpret_cast<float*>(h + static_cast<int64_t>(m) * k);
  for (int j = threadIdx.x; j < k; j += blockDim.x) w[j] = to_f32(weight[j]);
  wait_for_previous_kernel();
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  const int vectors = m * k / 8;  // 16-byte pieces
  for (int i = threadIdx.x; i < vectors; i += blockDim.x)
    reinterpret_cast<uint4*>(h)[i] = reinterpret_cast<const uint4*>(x)[i];
  __syncthreads();
  // v < threads is alike across a warp (both are warp multiples), so the shuffles see whole warps.
  const int threads = rmsnorm_row_threads(k);
  for (int r = 0; r < m; ++r)
    for (int v = threadIdx.x; v < threads; v += blockDim.x) {
      const T* row = h + static_cast<int64_t>(r) * k;
      float squares = 0.0f;
      for (int j = v; j < k; j += threads) {
        const float e = to_f32(row[j]);
        squares += e * e;
      }
      for (int mask = 16; mask > 0; mask /= 2) squares = squares + shuffle_xor(squares, mask);
      if (lane == 0) warp_sums[r][v / 32] = squares;
    }
  __syncthreads();
  for (int r = warp; r < m; r += warps) {
    float total = lane < threads / 32 ? warp_sums[r][lane] : 0.0f;
    for (int mask = 16; mask > 0; mask /= 2) total = total + shuffle_xor(total, mask);
    if (lane == 0) rstd[r] = rsqrtf(total / static_cast<float>(k) + eps);
  }
  __syncthreads();
  for (int r = 0; r < m; ++r) {
    T* row = h + static_cast<int64_t>(r) * k;
    for (int j = threadIdx.x; j < k; j += blockDim.x) row[j] = from_f32<T>(round_as<T>(to_f32(row[j]) * rstd[r]) * w[j]);
  }
  __syncthreads();
}

}  // namespace tessera::cuda
