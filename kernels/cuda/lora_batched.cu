// CUDA lora_batched (punica's BGMV, gathered by row): a shrink kernel, one block per row, each warp
// the dot products of x[t] with some rows of its adapter's A (fp32, into a [T, R] workspace); then
// an expand kernel, one thread per output feature, y[t, o] += s * v[t] . B[n, o, :rank]. Rows
// without an adapter return at once. A rank or index outside its range traps (see embedding.cu).
#include <algorithm>
#include <type_traits>

#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace tessera::cuda {

namespace {

constexpr int kShrinkThreads = 256, kExpandThreads = 256;

// The adapter of row t and its rank there, or -1 / 0 for a row left alone.
__device__ __forceinline__ int row_adapter(const int32_t* index, const int32_t* ranks, int64_t t, int64_t adapters,
                                           int64_t max_rank, int& rank) {
  const int n = index[t];
  if (n < -1 || n >= adapters) __trap();
  rank = 0;
  if (n < 0) return n;
  rank = ranks[n];
  if (rank < 0 || rank > max_rank) __trap();
  return n;
}

template <typename T>
__global__ void lora_shrink_kernel(const T* x, const T* a, const int32_t* ranks, const int32_t* index, float* v,
                                   LoraBatchShape s) {
  const int64_t t = blockIdx.x;
  int rank;
  const int n = row_adapter(index, ranks, t, s.adapters, s.rank, rank);
  if (n < 0) return;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  const T* xt = x + t * s.in;
  for (int r = warp; r < rank; r += warps) {
    const T* ar = a + (static_cast<int64_t>(n) * s.rank + r) * s.in;
    float acc = 0;
    for (int64_t k = lane; k < s.in; k += 32) acc += to_f32(xt[k]) * to_f32(ar[k]);
    for (int mask = 16; mask > 0; mask /= 2) acc += shuffle_xor(acc, mask);
    if (lane == 0) v[t * s.rank + r] = acc;
  }
}

template <typename T>
__global__ void lora_expand_kernel(T* y, const T* b, const int32_t* ranks, const float* scales, const int32_t* index,
                                   const float* v, LoraBatchShape s) {
  extern __shared__ float vt[];
  const int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int64_t t = blockIdx.y; t < s.rows; t += gridDim.y) {  // the same t across the block
    int rank;
    const int n = row_adapter(index, ranks, t, s.adapters, s.rank, rank);
    if (n < 0 || rank == 0) continue;
    __syncthreads();  // the previous row's vt is no longer read
    for (int r = threadIdx.x; r < rank; r += blockDim.x) vt[r] = v[t * s.rank + r];
    __syncthreads();
    if (o >= s.out) continue;
    const T* bo = b + (static_cast<int64_t>(n) * s.out + o) * s.rank;
    float acc = 0;
    for (int r = 0; r < rank; ++r) acc += vt[r] * to_f32(bo[r]);
    T* yo = y + t * s.out + o;
    *yo = from_f32<T>(to_f32(*yo) + scales[n] * acc);
  }
}

}  // namespace

void lora_batched(const Tensor& y, const Tensor& x, const Tensor& a, const Tensor& b, const Tensor& ranks,
                  const Tensor& scales, const Tensor& index, const LoraBatchShape& s) {
  const Tensor v = Tensor::empty({s.rows, s.rank}, DType::F32, x.device());
  const cudaStream_t stream = stream_of(x);
  dispatch_floating(x.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    lora_shrink_kernel<T><<<static_cast<unsigned>(s.rows), kShrinkThreads, 0, stream>>>(
        static_cast<const T*>(x.data()), static_cast<const T*>(a.data()), ranks.data_as<int32_t>(),
        index.data_as<int32_t>(), v.data_as<float>(), s);
    check_launch();
    const dim3 grid(static_cast<unsigned>((s.out + kExpandThreads - 1) / kExpandThreads),
                    static_cast<unsigned>(std::min<int64_t>(s.rows, 65535)));
    lora_expand_kernel<T><<<grid, kExpandThreads, static_cast<size_t>(s.rank) * sizeof(float), stream>>>(
        static_cast<T*>(y.data()), static_cast<const T*>(b.data()), ranks.data_as<int32_t>(), scales.data_as<float>(),
        index.data_as<int32_t>(), v.data_as<float>(), s);
    check_launch();
  });
}

}  // namespace tessera::cuda
