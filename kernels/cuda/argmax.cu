// CUDA argmax_rows: one block per row. Each thread walks its strided share of the row keeping the
// first maximum it meets and a running sum of exp(x - max); the block merges the threads' states
// (a larger maximum wins, a tie goes to the lower index; the sums rescale to the winner's maximum)
// through warp shuffles and shared memory. A decode step reads back 8 bytes per row instead of
// its vocab-sized f32 logits.
#include <cmath>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace tessera::cuda {

namespace {

constexpr int kThreads = 512;

struct Pick {
  float max;
  int index;
  float sum;  // of exp(x - max) over the part
};

__device__ __forceinline__ Pick merge(const Pick& a, const Pick& b) {
  if (b.max == -INFINITY && b.sum == 0.0f) return a;  // b saw nothing
  if (a.max == -INFINITY && a.sum == 0.0f) return b;
  const bool b_wins = b.max > a.max || (b.max == a.max && b.index < a.index);
  const Pick& w = b_wins ? b : a;
  const Pick& l = b_wins ? a : b;
  return {w.max, w.index, w.sum + l.sum * expf(l.max - w.max)};
}

__device__ __forceinline__ Pick shuffle(const Pick& p, int mask) {
  return {__shfl_xor_sync(0xffffffffu, p.max, mask), __shfl_xor_sync(0xffffffffu, p.index, mask),
          __shfl_xor_sync(0xffffffffu, p.sum, mask)};
}

template <typename T>
__global__ void __launch_bounds__(kThreads) argmax_rows_kernel(int32_t* index, float* logprob, const T* logits,
                                                               int64_t vocab) {
  wait_for_previous_kernel();
  let_next_kernel_start();
  const T* row = logits + static_cast<int64_t>(blockIdx.x) * vocab;
  Pick p{-INFINITY, INT_MAX, 0.0f};
  for (int64_t v = threadIdx.x; v < vocab; v += blockDim.x) {
    const float x = to_f32(row[v]);
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
  if (p.index == INT_MAX) p.sum = 0.0f;  // marks an empty part (vocab < threads)
  for (int mask = 16; mask > 0; mask /= 2) p = merge(p, shuffle(p, mask));
  __shared__ Pick per_warp[kThreads / 32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  if (lane == 0) per_warp[warp] = p;
  __syncthreads();
  if (warp != 0) return;
  p = lane < warps ? per_warp[lane] : Pick{-INFINITY, INT_MAX, 0.0f};
  for (int mask = 16; mask > 0; mask /= 2) p = merge(p, shuffle(p, mask));
  if (lane == 0) {
    index[blockIdx.x] = p.index;
    logprob[blockIdx.x] = -logf(p.sum);
  }
}

}  // namespace

void argmax_rows(const Tensor& index, const Tensor& logprob, const Tensor& logits) {
  const int64_t rows = logits.size(0), vocab = logits.size(1);
  if (vocab > INT32_MAX) throw Error("argmax_rows: a vocabulary of " + std::to_string(vocab) + " is beyond int32");
  const int threads = static_cast<int>(std::min<int64_t>(kThreads, (vocab + 31) / 32 * 32));
  dispatch_floating(logits.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    launch_kernel(argmax_rows_kernel<T>, static_cast<unsigned>(rows), threads, 0, stream_of(logits),
                  index.data_as<int32_t>(), logprob.data_as<float>(), logits.data_as<T>(), vocab);
  });
  check_launch();
}

}  // namespace tessera::cuda
