// CUDA SwiGLU: elementwise grid-stride loops, fp32 math, rounding to the activation dtype where
// PyTorch's bf16 ops do (kernels/cpu/swiglu.cpp has the same formulas).
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace tessera::cuda {

namespace {

constexpr int kThreads = 256;

// PyTorch's silu and sigmoid formulas; expf rather than __expf to stay close to the CPU.
__device__ __forceinline__ float silu(float g) { return g / (1.0f + expf(-g)); }
__device__ __forceinline__ float sigmoid(float g) { return 1.0f / (1.0f + expf(-g)); }

template <typename T>
__global__ void swiglu_forward_kernel(T* out, const T* gate, const T* up, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = from_f32<T>(round_as<T>(silu(to_f32(gate[i]))) * to_f32(up[i]));
}

template <typename T>
__global__ void swiglu_backward_kernel(T* dgate, T* dup, const T* dout, const T* gate, const T* up, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float g = to_f32(gate[i]), dy = to_f32(dout[i]), s = sigmoid(g);
    dup[i] = from_f32<T>(dy * round_as<T>(silu(g)));
    dgate[i] = from_f32<T>(round_as<T>(dy * to_f32(up[i])) * s * (1.0f + g * (1.0f - s)));
  }
}

}  // namespace

void swiglu_forward(const Tensor& out, const Tensor& gate, const Tensor& up) {
  const int64_t n = gate.numel();
  dispatch_floating(gate.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    swiglu_forward_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream_of(gate)>>>(
        out.data_as<T>(), gate.data_as<T>(), up.data_as<T>(), n);
  });
  check_launch();
}

void swiglu_backward(const Tensor& dgate, const Tensor& dup, const Tensor& dout, const Tensor& gate,
                     const Tensor& up) {
  const int64_t n = gate.numel();
  dispatch_floating(gate.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    swiglu_backward_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream_of(gate)>>>(
        dgate.data_as<T>(), dup.data_as<T>(), dout.data_as<T>(), gate.data_as<T>(), up.data_as<T>(), n);
  });
  check_launch();
}

}  // namespace tessera::cuda
