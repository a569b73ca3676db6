// CUDA AdamW (one fused pass: moments, master weights, working copy) and the squared-norm reduction.
#include <cmath>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/elementwise.cuh"

namespace tessera::cuda {

namespace {

constexpr int kThreads = 256;

// One fused pass per element: moments, master weight, and its copy in the working dtype.
template <typename Low>
struct AdamWOp {
  float *p, *m, *v;
  const float* g;
  Low* low;  // null: no working copy
  ops::AdamWStep s;
  float bc1, bc2, decay;

  template <int kN>
  __device__ void operator()(int64_t i, Width<kN>) const {
    float pi[kN], gi[kN], mi[kN], vi[kN];
    load_f32<kN>(pi, p + i);
    load_f32<kN>(gi, g + i);
    load_f32<kN>(mi, m + i);
    load_f32<kN>(vi, v + i);
#pragma unroll
    for (int e = 0; e < kN; ++e) {
      const float ge = gi[e] * s.grad_scale;
      mi[e] = s.beta1 * mi[e] + (1.0f - s.beta1) * ge;
      vi[e] = s.beta2 * vi[e] + (1.0f - s.beta2) * ge * ge;
      pi[e] = pi[e] * decay - s.lr * (mi[e] / bc1) / (sqrtf(vi[e] / bc2) + s.eps);
    }
    store_f32<kN>(m + i, mi);
    store_f32<kN>(v + i, vi);
    store_f32<kN>(p + i, pi);
    if (low) store_f32<kN>(low + i, pi);
  }
};

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
    using Low = std::remove_pointer_t<decltype(low_ptr)>;
    const AdamWOp<Low> op{param.data_as<float>(), m.data_as<float>(), v.data_as<float>(), grad.data_as<float>(),
                          low_ptr, s, bc1, bc2, 1.0f - s.lr * s.weight_decay};
    launch_elementwise(n, packs_aligned(op.p, op.m, op.v, op.g, op.low), stream_of(param), op);
  };
  if (!low.defined()) {
    launch(static_cast<float*>(nullptr));
  } else {
    dispatch_floating(low.dtype(), [&](auto* tag) {
      using Low = std::remove_pointer_t<decltype(tag)>;
      launch(low.data_as<Low>());
    });
  }
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
