// Reductions across a thread block for the row-wise kernels (one block per row): warp shuffles,
// then one value per warp through shared memory. blockDim.x must be a multiple of 32.
#pragma once

namespace tessera::cuda {

__device__ __forceinline__ float shuffle_xor(float v, int lane_mask) {
  return __shfl_xor_sync(0xffffffffu, v, lane_mask);
}
__device__ __forceinline__ float2 shuffle_xor(float2 v, int lane_mask) {
  return {__shfl_xor_sync(0xffffffffu, v.x, lane_mask), __shfl_xor_sync(0xffffffffu, v.y, lane_mask)};
}

// Combines every thread's v with `combine` (associative and commutative, with `identity` as its
// neutral element); every thread gets the result. Safe to call several times in one kernel.
template <typename T, typename Combine>
__device__ T block_reduce(T v, T identity, Combine combine) {
  __shared__ T per_warp[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  for (int mask = 16; mask > 0; mask /= 2) v = combine(v, shuffle_xor(v, mask));
  __syncthreads();  // a previous call may still be reading per_warp
  if (lane == 0) per_warp[warp] = v;
  __syncthreads();
  v = lane < warps ? per_warp[lane] : identity;
  for (int mask = 16; mask > 0; mask /= 2) v = combine(v, shuffle_xor(v, mask));
  return v;
}

__device__ __forceinline__ float block_sum(float v) {
  return block_reduce(v, 0.0f, [](float a, float b) { return a + b; });
}

}  // namespace tessera::cuda
