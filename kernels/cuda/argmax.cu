// CUDA argmax_rows. Each thread walks its strided share of a range of a row keeping the first
// maximum it meets and a running sum of exp(x - max); the block merges the threads' states (a
// larger maximum wins, a tie goes to the lower index; the sums rescale to the winner's maximum)
// through warp shuffles and shared memory. Many rows: one block per row. A few rows (a decode
// step: one block per row would leave the GPU idle while one SM reads 0.5 MB of logits): each row
// is cut into ranges for a grid of about two blocks per SM, whose states a second launch merges
// per row. A decode step reads back 8 bytes per row instead of its vocab-sized f32 logits.
#include <cmath>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace tessera::cuda {

namespace {

constexpr int kThreads = 512;
constexpr int64_t kMinRange = 4096;  // elements per range at least: a range's block has work to hide latency

struct Pick {
  float max;
  int index;
  float sum;  // of exp(x - max) over the part
};

constexpr Pick kNothing{-INFINITY, INT_MAX, 0.0f};

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

// The merge of every thread's p, valid in thread 0.
__device__ Pick block_merge(Pick p) {
  for (int mask = 16; mask > 0; mask /= 2) p = merge(p, shuffle(p, mask));
  __shared__ Pick per_warp[kThreads / 32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  if (lane == 0) per_warp[warp] = p;
  __syncthreads();
  p = lane < warps ? per_warp[lane] : kNothing;
  for (int mask = 16; mask > 0; mask /= 2) p = merge(p, shuffle(p, mask));
  return p;
}

// This block's pick over row[begin, end).
template <typename T>
__device__ Pick range_pick(const T* row, int64_t begin, int64_t end) {
  Pick p = kNothing;
  for (int64_t v = begin + threadIdx.x; v < end; v += blockDim.x) {
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
  if (p.index == INT_MAX) p.sum = 0.0f;  // marks an empty part (fewer elements than threads)
  return block_merge(p);
}

__device__ __forceinline__ void write_pick(int32_t* index, float* logprob, const Pick& p) {
  index[blockIdx.x] = p.index;
  logprob[blockIdx.x] = -logf(p.sum);
}

template <typename T>
__global__ void __launch_bounds__(kThreads) argmax_rows_kernel(int32_t* index, float* logprob, const T* logits,
                                                               int64_t vocab) {
  wait_for_previous_kernel();
  let_next_kernel_start();
  const Pick p = range_pick(logits + static_cast<int64_t>(blockIdx.x) * vocab, 0, vocab);
  if (threadIdx.x == 0) write_pick(index, logprob, p);
}

// Block (r, s) of grid (ranges, rows): range s of row r into parts[r * ranges + s].
template <typename T>
__global__ void __launch_bounds__(kThreads) argmax_ranges_kernel(Pick* parts, const T* logits, int64_t vocab,
                                                                 int64_t range) {
  wait_for_previous_kernel();
  let_next_kernel_start();
  const int64_t begin = blockIdx.x * range;
  const Pick p = range_pick(logits + static_cast<int64_t>(blockIdx.y) * vocab, begin, min(vocab, begin + range));
  if (threadIdx.x == 0) parts[static_cast<int64_t>(blockIdx.y) * gridDim.x + blockIdx.x] = p;
}

// Block r: the merge of row r's ranges.
__global__ void __launch_bounds__(kThreads) argmax_merge_kernel(int32_t* index, float* logprob, const Pick* parts,
                                                                int ranges) {
  wait_for_previous_kernel();
  let_next_kernel_start();
  Pick p = kNothing;
  for (int s = threadIdx.x; s < ranges; s += blockDim.x) p = merge(p, parts[static_cast<int64_t>(blockIdx.x) * ranges + s]);
  p = block_merge(p);
  if (threadIdx.x == 0) write_pick(index, logprob, p);
}

}  // namespace

void argmax_rows(const Tensor& index, const Tensor& logprob, const Tensor& logits) {
  const int64_t rows = logits.size(0), vocab = logits.size(1);
  if (vocab > INT32_MAX) throw Error("argmax_rows: a vocabulary of " + std::to_string(vocab) + " is beyond int32");
  const cudaStream_t stream = stream_of(logits);
  const int64_t wanted = 2 * sm_count(logits.device().index) / rows;  // ranges per row for ~2 blocks per SM
  const int64_t ranges = std::min<int64_t>(wanted, vocab / kMinRange);
  dispatch_floating(logits.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    if (ranges < 2) {
      const int threads = static_cast<int>(std::min<int64_t>(kThreads, (vocab + 31) / 32 * 32));
      launch_kernel(argmax_rows_kernel<T>, static_cast<unsigned>(rows), threads, 0, stream, index.data_as<int32_t>(),
                    logprob.data_as<float>(), logits.data_as<T>(), vocab);
      return;
    }
    const int64_t range = (vocab + ranges - 1) / ranges;
    Tensor parts = Tensor::empty({rows * ranges * int64_t(sizeof(Pick))}, DType::U8, logits.device());
    launch_kernel(argmax_ranges_kernel<T>, dim3(static_cast<unsigned>(ranges), static_cast<unsigned>(rows)), kThreads,
                  0, stream, static_cast<Pick*>(parts.data()), logits.data_as<T>(), vocab, range);
    launch_kernel(argmax_merge_kernel, static_cast<unsigned>(rows), 256, 0, stream, index.data_as<int32_t>(),
                  logprob.data_as<float>(), static_cast<const Pick*>(parts.data()), static_cast<int>(ranges));
  });
  check_launch();
}

}  // namespace tessera::cuda
