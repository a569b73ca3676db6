// CUDA argmax_rows. A block's pick over a range of a row is kernels/cuda/row_pick.cuh's. Many
// rows: one block per row. A few rows (a decode
// step: one block per row would leave the GPU idle while one SM reads 0.5 MB of logits): each row
// is cut into ranges for a grid of about two blocks per SM, whose states a second launch merges
// per row. A decode step reads back 8 bytes per row instead of its vocab-sized f32 logits.
#include <cmath>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/row_pick.cuh"

namespace tessera::cuda {

namespace {

constexpr int kThreads = 512;
constexpr int64_t kMinRange = 1024;  // elements per range at least (two per thread)

__device__ __forceinline__ void write_pick(int32_t* index, float* logprob, const RowPick& p) {
  index[blockIdx.x] = p.index;
  logprob[blockIdx.x] = -logf(p.sum);
}

template <typename T>
__global__ void __launch_bounds__(kThreads) argmax_rows_kernel(int32_t* index, float* logprob, const T* logits,
                                                               int64_t vocab) {
  wait_for_previous_kernel();
  let_next_kernel_start();
  const RowPick p = range_pick(logits + static_cast<int64_t>(blockIdx.x) * vocab, 0, vocab);
  if (threadIdx.x == 0) write_pick(index, logprob, p);
}

// Block (r, s) of grid (ranges, rows): range s of row r into parts[r * ranges + s].
template <typename T>
__global__ void __launch_bounds__(kThreads) argmax_ranges_kernel(RowPick* parts, const T* logits, int64_t vocab,
                                                                 int64_t range) {
  wait_for_previous_kernel();
  let_next_kernel_start();
  const int64_t begin = blockIdx.x * range;
  const RowPick p = range_pick(logits + static_cast<int64_t>(blockIdx.y) * vocab, begin, min(vocab, begin + range));
  if (threadIdx.x == 0) parts[static_cast<int64_t>(blockIdx.y) * gridDim.x + blockIdx.x] = p;
}

// Block r: the merge of row r's ranges.
__global__ void __launch_bounds__(kThreads) argmax_merge_kernel(int32_t* index, float* logprob, const RowPick* parts,
                                                                int ranges) {
  wait_for_previous_kernel();
  let_next_kernel_start();
  RowPick p = kNoPick;
  for (int s = threadIdx.x; s < ranges; s += blockDim.x) p = merge_picks(p, parts[static_cast<int64_t>(blockIdx.x) * ranges + s]);
  p = block_merge_picks(p);
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
    Tensor parts = Tensor::empty({rows * ranges * int64_t(sizeof(RowPick))}, DType::U8, logits.device());
    launch_kernel(argmax_ranges_kernel<T>, dim3(static_cast<unsigned>(ranges), static_cast<unsigned>(rows)), kThreads,
                  0, stream, static_cast<RowPick*>(parts.data()), logits.data_as<T>(), vocab, range);
    launch_kernel(argmax_merge_kernel, static_cast<unsigned>(rows), 256, 0, stream, index.data_as<int32_t>(),
                  logprob.data_as<float>(), static_cast<const RowPick*>(parts.data()), static_cast<int>(ranges));
  });
  check_launch();
}

}  // namespace tessera::cuda
