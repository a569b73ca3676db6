// The first maximum of (a range of) a logit row and the sum of exp(x - max) over it, by one thread
// block: each thread walks its strided share keeping the first maximum it meets and a running
// sum; the block merges the threads' states (a larger maximum wins, a tie goes to the lower index;
// the sums rescale to the winner's maximum) through warp shuffles and shared memory. Used by
// argmax_rows and sample_rows.
#pragma once

#include <climits>
#include <cmath>

#include "kernels/cuda/cuda_common.cuh"

namespace tessera::cuda {

constexpr int kPickThreads = 512;  // the most threads a block merging picks may have

struct Identity {
  __device__ __forceinline__ float operator()(float x) const { return x; }
};

struct RowPick {
  float max;
  int index;
  float sum;  // of exp(x - max) over the part
};

constexpr RowPick kNoPick{-INFINITY, INT_MAX, 0.0f};

__device__ __forceinline__ RowPick merge_picks(const RowPick& a, const RowPick& b) {
  if (b.max == -INFINITY && b.sum == 0.0f) return a;  // b saw nothing
  if (a.max == -INFINITY && a.sum == 0.0f) return b;
  const bool b_wins = b.max > a.max || (b.max == a.max && b.index < a.index);
  const RowPick& w = b_wins ? b : a;
  const RowPick& l = b_wins ? a : b;
  return {w.max, w.index, w.sum + l.sum * expf(l.max - w.max)};
}

__device__ __forceinline__ RowPick shuffle_pick(const RowPick& p, int mask) {
  return {__shfl_xor_sync(0xffffffffu, p.max, mask), __shfl_xor_sync(0xffffffffu, p.index, mask),
          __shfl_xor_sync(0xffffffffu, p.sum, mask)};
}

// The merge of every thread's p, valid in thread 0.
__device__ inline RowPick block_merge_picks(RowPick p) {
  for (int mask = 16; mask > 0; mask /= 2) p = merge_picks(p, shuffle_pick(p, mask));
  __shared__ RowPick per_warp[kPickThreads / 32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  if (lane == 0) per_warp[warp] = p;
  __syncthreads();
  p = lane < warps ? per_warp[lane] : kNoPick;
  for (int mask = 16; mask > 0; mask /= 2) p = merge_picks(p, shuffle_pick(p, mask));
  return p;
}

// This block's pick over row[begin, end), each element mapped by value() first; valid in thread 0.
template <typename T, typename Value = Identity>
__device__ RowPick range_pick(const T* row, int64_t begin, int64_t end, Value value = {}) {
  RowPick p = kNoPick;
  for (int64_t v = begin + threadIdx.x; v < end; v += blockDim.x) {
    const float x = value(to_f32(row[v]));
    if (p.index == INT_MAX) {  // the first element this thread sees
      p = {x, static_cast<int>(v), 1.0f};
    } else if (x > p.max) {
      p.sum = p.sum * expf(p.max - x) + 1.0f;
      p.max = x;
      p.index = static_cast<int>(v);
    } else {
      p.sum += expf(x - p.max);
    }
  }
  if (p.index == INT_MAX) p.sum = 0.0f;  // marks an empty part (fewer elements than threads)
  return block_merge_picks(p);
}

}  // namespace tessera::cuda
