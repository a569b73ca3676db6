// Memory-bound elementwise kernels: a functor op(i, width) handles elements [i, i + width),
// moving them with load_f32/store_f32<width>. launch_elementwise runs it on packs of kPack
// elements over the bulk of the range when every pointer allows it (packs_aligned), and one
// element at a time over the rest, so that each access moves 8-16 bytes instead of 2-4.
#pragma once

#include <type_traits>

#include "kernels/cuda/cuda_common.cuh"

namespace tessera::cuda {

constexpr int kPack = 4;

// kN consecutive elements in one memory access.
template <typename T, int kN>
struct alignas(sizeof(T) * kN) Pack {
  T x[kN];
};

template <int kN, typename T>
__device__ __forceinline__ void load_f32(float (&out)[kN], const T* p) {
  const Pack<T, kN> v = *reinterpret_cast<const Pack<T, kN>*>(p);
#pragma unroll
  for (int i = 0; i < kN; ++i) out[i] = to_f32(v.x[i]);
}

template <int kN, typename T>
__device__ __forceinline__ void store_f32(T* p, const float (&in)[kN]) {
  Pack<T, kN> v;
#pragma unroll
  for (int i = 0; i < kN; ++i) v.x[i] = from_f32<T>(in[i]);
  *reinterpret_cast<Pack<T, kN>*>(p) = v;
}

template <int kN>
using Width = std::integral_constant<int, kN>;

// True when each pointer (null ones pass) holds whole packs of its element type.
template <typename... P>
bool packs_aligned(const P*... ptrs) {
  return ((reinterpret_cast<uintptr_t>(ptrs) % (kPack * sizeof(P)) == 0) && ...);
}

template <int kN, typename Op>
__global__ void elementwise_kernel(int64_t begin, int64_t end, Op op) {
  wait_for_previous_kernel();
  let_next_kernel_start();
  const int64_t stride = int64_t(gridDim.x) * blockDim.x * kN;
  for (int64_t i = begin + (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) * kN; i < end; i += stride)
    op(i, Width<kN>{});
}

template <typename Op>
void launch_elementwise(int64_t n, bool aligned, cudaStream_t stream, const Op& op) {
  constexpr int kThreads = 256;
  const int64_t bulk = aligned ? n / kPack * kPack : 0;
  if (bulk > 0)
    launch_kernel(elementwise_kernel<kPack, Op>, grid_for(bulk / kPack, kThreads), kThreads, 0, stream, int64_t(0),
                  bulk, op);
  if (bulk < n)
    launch_kernel(elementwise_kernel<1, Op>, grid_for(n - bulk, kThreads), kThreads, 0, stream, bulk, n, op);
  check_launch();
}

}  // namespace tessera::cuda
