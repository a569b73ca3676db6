// CUDA token embedding: one block per token row; the backward scatter-adds with fp32 atomics.
// Ids are not checked on the host (that would need a sync); a kernel meeting an id outside
// [0, V) traps, which loses the CUDA context: bad ids are a data-pipeline bug, not something to
// train through.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace tessera::cuda {

namespace {

constexpr int kThreads = 256;

template <typename Id>
__device__ __forceinline__ int64_t checked_row(const Id* ids, int64_t vocab) {
  const int64_t id = static_cast<int64_t>(ids[blockIdx.x]);
  if (id < 0 || id >= vocab) __trap();
  return id;
}

template <typename T, typename Id>
__global__ void embedding_forward_kernel(T* out, const T* weight, const Id* ids, int64_t vocab, int64_t hidden) {
  wait_for_previous_kernel();
  let_next_kernel_start();
  const T* src = weight + checked_row(ids, vocab) * hidden;
  T* dst = out + blockIdx.x * hidden;
  for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x) dst[j] = src[j];
}

template <typename T, typename Id>
__global__ void embedding_backward_kernel(float* dweight, const T* dout, const Id* ids, int64_t vocab,
                                          int64_t hidden) {
  float* dst = dweight + checked_row(ids, vocab) * hidden;
  const T* src = dout + blockIdx.x * hidden;
  for (int64_t j = threadIdx.x; j < hidden; j += blockDim.x) atomicAdd(dst + j, to_f32(src[j]));
}

}  // namespace

void embedding_forward(const Tensor& out, const Tensor& weight, const Tensor& ids) {
  dispatch_floating(weight.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    dispatch_index(ids.dtype(), [&](auto* id_tag) {
      using Id = std::remove_pointer_t<decltype(id_tag)>;
      launch_kernel(embedding_forward_kernel<T, Id>, ids.numel(), kThreads, 0, stream_of(out), out.data_as<T>(),
                    weight.data_as<T>(), ids.data_as<Id>(), weight.size(0), weight.size(1));
    });
  });
  check_launch();
}

void embedding_backward(const Tensor& dweight, const Tensor& dout, const Tensor& ids) {
  dispatch_floating(dout.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    dispatch_index(ids.dtype(), [&](auto* id_tag) {
      using Id = std::remove_pointer_t<decltype(id_tag)>;
      embedding_backward_kernel<T, Id><<<ids.numel(), kThreads, 0, stream_of(dweight)>>>(
          dweight.data_as<float>(), dout.data_as<T>(), ids.data_as<Id>(), dweight.size(0), dweight.size(1));
    });
  });
  check_launch();
}

}  // namespace tessera::cuda
