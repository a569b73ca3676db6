// CUDA fill, random fills, casts, add and scale: grid-stride loops with fp32 math, the
// memory-bound ones as elementwise functors (kernels/cuda/elementwise.cuh).
#include "core/rng.h"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/elementwise.cuh"

namespace tessera::cuda {

namespace {

constexpr int kThreads = 256;

template <typename T>
struct FillOp {
  T* out;
  float value;

  template <int kN>
  __device__ void operator()(int64_t i, Width<kN>) const {
    float x[kN];
#pragma unroll
    for (int e = 0; e < kN; ++e) x[e] = value;
    store_f32<kN>(out + i, x);
  }
};

template <typename T, bool kNormal>
__global__ void random_kernel(T* out, int64_t n, uint64_t seed, uint64_t offset, float a, float b) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float v = kNormal ? a + b * rng::normal(seed, offset + i) : a + (b - a) * rng::uniform(seed, offset + i);
    out[i] = from_f32<T>(v);
  }
}

template <typename In, typename Out>
struct CastOp {
  Out* out;
  const In* in;

  template <int kN>
  __device__ void operator()(int64_t i, Width<kN>) const {
    float x[kN];
    load_f32<kN>(x, in + i);
    store_f32<kN>(out + i, x);
  }
};

// out = alpha a + beta b; b null: out = alpha a.
template <typename T>
struct AxpbyOp {
  T* out;
  const T *a, *b;
  float alpha, beta;

  template <int kN>
  __device__ void operator()(int64_t i, Width<kN>) const {
    float x[kN], y[kN] = {};
    load_f32<kN>(x, a + i);
    if (b) load_f32<kN>(y, b + i);
#pragma unroll
    for (int e = 0; e < kN; ++e) x[e] = alpha * x[e] + (b ? beta * y[e] : 0.0f);
    store_f32<kN>(out + i, x);
  }
};

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
  dispatch_floating(t.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    const FillOp<T> op{t.data_as<T>(), value};
    launch_elementwise(t.numel(), packs_aligned(op.out), stream_of(t), op);
  });
}

void fill_uniform(const Tensor& t, uint64_t seed, uint64_t offset, float low, float high) {
  random_fill<false>(t, seed, offset, low, high);
}

void fill_normal(const Tensor& t, uint64_t seed, uint64_t offset, float mean, float std) {
  random_fill<true>(t, seed, offset, mean, std);
}

void copy(const Tensor& dst, const Tensor& src) {
  dispatch_floating(src.dtype(), [&](auto* in_tag) {
    using In = std::remove_pointer_t<decltype(in_tag)>;
    dispatch_floating(dst.dtype(), [&](auto* out_tag) {
      using Out = std::remove_pointer_t<decltype(out_tag)>;
      const CastOp<In, Out> op{dst.data_as<Out>(), src.data_as<In>()};
      launch_elementwise(dst.numel(), packs_aligned(op.out, op.in), stream_of(dst), op);
    });
  });
}

void add(const Tensor& out, const Tensor& a, const Tensor& b, float alpha, float beta) {
  dispatch_floating(out.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    const AxpbyOp<T> op{out.data_as<T>(), a.data_as<T>(), b.data_as<T>(), alpha, beta};
    launch_elementwise(out.numel(), packs_aligned(op.out, op.a, op.b), stream_of(out), op);
  });
}

void scale(const Tensor& out, const Tensor& in, float alpha) {
  dispatch_floating(out.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    const AxpbyOp<T> op{out.data_as<T>(), in.data_as<T>(), nullptr, alpha, 0.0f};
    launch_elementwise(out.numel(), packs_aligned(op.out, op.a), stream_of(out), op);
  });
}

}  // namespace tessera::cuda
