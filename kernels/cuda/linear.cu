// CUDA kernels of the Linear and LoRA ops: column sums, counter-based dropout.
//
// column_sum: a block of 256 threads covers `lanes` adjacent columns (32, or fewer when the
// tensor has fewer: one column for the loss sum) with 256 / lanes threads walking the rows, and
// reduces them through shared memory. Tall inputs are first cut into row chunks (grid.y), whose
// partial sums land in an f32 buffer that a second launch of the same kernel adds up, so the
// whole GPU works and the result does not depend on timing (no atomics).
#include "core/rng.h"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/elementwise.cuh"

namespace tessera::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kRowsPerChunk = 512;

template <typename T>
__global__ void column_sum_kernel(float* out, const T* in, int64_t rows, int64_t cols, int lanes,
                                  int64_t rows_per_chunk, bool accumulate) {
  __shared__ float partial[kThreads];
  const int lane = threadIdx.x % lanes, walker = threadIdx.x / lanes, walkers = kThreads / lanes;
  const int64_t col = blockIdx.x * int64_t(lanes) + lane;
  const int64_t first = blockIdx.y * rows_per_chunk, last = min(rows, first + rows_per_chunk);
  float acc = 0.0f;
  if (col < cols)
    for (int64_t r = first + walker; r < last; r += walkers) acc += to_f32(in[r * cols + col]);
  partial[threadIdx.x] = acc;
  __syncthreads();
  if (walker != 0 || col >= cols) return;
  float total = 0.0f;
  for (int w = 0; w < walkers; ++w) total += partial[w * lanes + lane];
  float* dst = out + blockIdx.y * cols + col;  // row chunk y's partial sums, or out itself
  *dst = accumulate ? *dst + total : total;
}

template <typename T>
void launch_column_sum(float* out, const T* in, int64_t rows, int64_t cols, bool accumulate, cudaStream_t stream) {
  int lanes = 1;
  while (lanes < 32 && lanes < cols) lanes *= 2;
  const int64_t chunks = (rows + kRowsPerChunk - 1) / kRowsPerChunk;
  const dim3 grid(static_cast<unsigned>((cols + lanes - 1) / lanes), static_cast<unsigned>(chunks));
  column_sum_kernel<T><<<grid, kThreads, 0, stream>>>(out, in, rows, cols, lanes, kRowsPerChunk, accumulate);
  check_launch();
}

template <typename T>
struct DropoutOp {
  T* out;
  const T* in;
  float p, keep_scale;
  uint64_t key, first;

  template <int kN>
  __device__ void operator()(int64_t i, Width<kN>) const {
    float x[kN];
    load_f32<kN>(x, in + i);
#pragma unroll
    for (int e = 0; e < kN; ++e) x[e] = rng::uniform(key, first + i + e) >= p ? x[e] * keep_scale : 0.0f;
    store_f32<kN>(out + i, x);
  }
};

}  // namespace

void column_sum(const Tensor& out, const Tensor& in, bool accumulate) {
  const int64_t cols = in.size(-1), rows = in.numel() / cols;
  const cudaStream_t stream = stream_of(in);
  dispatch_floating(in.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    if (rows <= kRowsPerChunk) return launch_column_sum(out.data_as<float>(), in.data_as<T>(), rows, cols, accumulate, stream);
    // [chunks, cols] partial sums (the allocator reuses the buffer only after this stream is past it),
    // then their column sums into out.
    const int64_t chunks = (rows + kRowsPerChunk - 1) / kRowsPerChunk;
    Tensor partial = Tensor::empty({chunks, cols}, DType::F32, in.device());
    launch_column_sum(partial.data_as<float>(), in.data_as<T>(), rows, cols, false, stream);
    column_sum(out, partial, accumulate);
  });
}

void dropout(const Tensor& out, const Tensor& in, float p, uint64_t key, uint64_t first) {
  dispatch_floating(in.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    const DropoutOp<T> op{out.data_as<T>(), in.data_as<T>(), p, 1.0f / (1.0f - p), key, first};
    launch_elementwise(in.numel(), packs_aligned(op.out, op.in), stream_of(in), op);
  });
}

}  // namespace tessera::cuda
