// CUDA fill, random fills, casts, add and scale: grid-stride loops with fp32 math.
#include "core/rng.h"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace tessera::cuda {

namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void fill_kernel(T* out, int64_t n, float value) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = from_f32<T>(value);
}

template <typename T, bool kNormal>
__global__ void random_kernel(T* out, int64_t n, uint64_t seed, uint64_t offset, float a, float b) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float v = kNormal ? a + b * rng::normal(seed, offset + i) : a + (b - a) * rng::uniform(seed, offset + i);
    out[i] = from_f32<T>(v);
  }
}

template <typename In, typename Out>
__global__ void cast_kernel(Out* out, const In* in, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = from_f32<Out>(to_f32(in[i]));
}

template <typename T>
__global__ void axpby_kernel(T* out, const T* a, const T* b, int64_t n, float alpha, float beta) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float y = b ? beta * to_f32(b[i]) : 0.0f;
    out[i] = from_f32<T>(alpha * to_f32(a[i]) + y);
  }
}

template <bool kNormal>
void random_fill(const Tensor& t, uint64_t seed, uint64_t offset, float a, float b) {
  const int64_t n = t.numel();
  if (n == 0) return;
  dispatch_floating(t.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    random_kernel<T, kNormal><<<grid_for(n, kThreads), kThreads, 0, stream_of(t)>>>(t.data_as<T>(), n, seed,
                                                                                  offset, a, b);
  });
  check_launch();
}

}  // namespace

void fill(const Tensor& t, float value) {
  const int64_t n = t.numel();
  if (n == 0) return;
  dispatch_floating(t.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    fill_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream_of(t)>>>(t.data_as<T>(), n, value);
  });
  check_launch();
}

void fill_uniform(const Tensor& t, uint64_t seed, uint64_t offset, float low, float high) {
  random_fill<false>(t, seed, offset, low, high);
}

void fill_normal(const Tensor& t, uint64_t seed, uint64_t offset, float mean, float std) {
  random_fill<true>(t, seed, offset, mean, std);
}

void copy(const Tensor& dst, const Tensor& src) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  dispatch_floating(src.dtype(), [&](auto* in_tag) {
    using In = std::remove_pointer_t<decltype(in_tag)>;
    dispatch_floating(dst.dtype(), [&](auto* out_tag) {
      using Out = std::remove_pointer_t<decltype(out_tag)>;
      cast_kernel<In, Out><<<grid_for(n, kThreads), kThreads, 0, stream_of(dst)>>>(dst.data_as<Out>(),
                                                                                src.data_as<In>(), n);
    });
  });
  check_launch();
}

void add(const Tensor& out, const Tensor& a, const Tensor& b, float alpha, float beta) {
  const int64_t n = out.numel();
  if (n == 0) return;
  dispatch_floating(out.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    axpby_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream_of(out)>>>(out.data_as<T>(), a.data_as<T>(),
                                                                          b.data_as<T>(), n, alpha, beta);
  });
  check_launch();
}

void scale(const Tensor& out, const Tensor& in, float alpha) {
  const int64_t n = out.numel();
  if (n == 0) return;
  dispatch_floating(out.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    axpby_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream_of(out)>>>(out.data_as<T>(), in.data_as<T>(),
                                                                          nullptr, n, alpha, 0.0f);
  });
  check_launch();
}

}  // namespace tessera::cuda
