// CUDA AdamW (one fused pass: moments, master weights, working copy) and the squared-norm reduction.
#include <cmath>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace tessera::cuda {

namespace {

constexpr int kThreads = 256;

template <typename Low>
__global__ void adamw_kernel(float* p, const float* g, float* m, float* v, Low* low, int64_t n, ops::AdamWStep s,
                             float bc1, float bc2) {
  const float decay = 1.0f - s.lr * s.weight_decay;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float gi = g[i] * s.grad_scale;
    const float mi = s.beta1 * m[i] + (1.0f - s.beta1) * gi;
    const float vi = s.beta2 * v[i] + (1.0f - s.beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const float pi = p[i] * decay - s.lr * (mi / bc1) / (sqrtf(vi / bc2) + s.eps);
    p[i] = pi;
    if (low) low[i] = from_f32<Low>(pi);
  }
}

// Each block reduces its part in double (no drift over billions of elements), then one atomic.
template <typename T>
__global__ void sum_squares_kernel(float* out, const T* x, int64_t n) {
  double acc = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float xi = to_f32(x[i]);
    acc += double(xi) * xi;
  }
  for (int offset = 16; offset > 0; offset >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, offset);
  __shared__ double warp_sums[kThreads / 32];
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = acc;
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = 0;
    for (int w = 0; w < kThreads / 32; ++w) total += warp_sums[w];
    atomicAdd(out, static_cast<float>(total));
  }
}

}  // namespace

void adamw(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v, const ops::AdamWStep& s,
           const Tensor& low) {
  const int64_t n = param.numel();
  if (n == 0) return;
  // Bias corrections on the host, computed exactly as the CPU reference does.
  const float bc1 = 1.0f - std::pow(s.beta1, static_cast<float>(s.step));
  const float bc2 = 1.0f - std::pow(s.beta2, static_cast<float>(s.step));
  auto launch = [&](auto* low_ptr) {
    adamw_kernel<<<grid_for(n, kThreads), kThreads, 0, stream_of(param)>>>(
        param.data_as<float>(), grad.data_as<float>(), m.data_as<float>(), v.data_as<float>(), low_ptr, n, s, bc1, bc2);
  };
  if (!low.defined()) {
    launch(static_cast<float*>(nullptr));
  } else {
    dispatch_floating(low.dtype(), [&](auto* tag) {
      using Low = std::remove_pointer_t<decltype(tag)>;
      launch(low.data_as<Low>());
    });
  }
  check_launch();
}

void sum_squares(const Tensor& out, const Tensor& x) {
  const int64_t n = x.numel();
  if (n == 0) return;
  dispatch_floating(x.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    sum_squares_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream_of(x)>>>(out.data_as<float>(), x.data_as<T>(), n);
  });
  check_launch();
}

}  // namespace tessera::cuda
