// CUDA SwiGLU: elementwise functors (kernels/cuda/elementwise.cuh), fp32 math, rounding to the
// activation dtype where PyTorch's bf16 ops do (kernels/cpu/swiglu.cpp has the same formulas).
// swiglu_rows reads gate and up as the halves of a stacked projection's rows (stacked_rows.h).
#include "kernels/cuda/activations.cuh"
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/stacked_rows.h"

namespace tessera::cuda {

namespace {

// kN outputs from kN gates and kN ups.
template <typename T, int kN>
__device__ __forceinline__ void swiglu_pack(T* out, const T* gate, const T* up) {
  float g[kN], u[kN];
  load_f32<kN>(g, gate);
  load_f32<kN>(u, up);
#pragma unroll
  for (int e = 0; e < kN; ++e) g[e] = round_as<T>(silu(g[e])) * u[e];
  store_f32<kN>(out, g);
}

template <typename T>
struct SwigluForward {
  T* out;
  const T *gate, *up;

  template <int kN>
  __device__ void operator()(int64_t i, Width<kN>) const {
    swiglu_pack<T, kN>(out + i, gate + i, up + i);
  }
};

// Output i = (t, f) of [T, F] from gate_up [T, 2F]: its gate at t * 2F + f, its up F later. A
// pack of kN never crosses a row when F is a multiple of kN (the caller's packs_aligned).
template <typename T>
struct SwigluRows {
  T* out;
  const T* gate_up;
  int64_t f;

  template <int kN>
  __device__ void operator()(int64_t i, Width<kN>) const {
    const T* gate = gate_up + i + (i / f) * f;
    swiglu_pack<T, kN>(out + i, gate, gate + f);
  }
};

template <typename T>
struct SwigluBackward {
  T *dgate, *dup;
  const T *dout, *gate, *up;

  template <int kN>
  __device__ void operator()(int64_t i, Width<kN>) const {
    float g[kN], u[kN], dy[kN], dg[kN], du[kN];
    load_f32<kN>(g, gate + i);
    load_f32<kN>(u, up + i);
    load_f32<kN>(dy, dout + i);
#pragma unroll
    for (int e = 0; e < kN; ++e) {
      const float s = sigmoid(g[e]);
      du[e] = dy[e] * round_as<T>(silu(g[e]));
      dg[e] = round_as<T>(dy[e] * u[e]) * s * (1.0f + g[e] * (1.0f - s));
    }
    store_f32<kN>(dup + i, du);
    store_f32<kN>(dgate + i, dg);
  }
};

}  // namespace

void swiglu_forward(const Tensor& out, const Tensor& gate, const Tensor& up) {
  dispatch_floating(gate.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    const SwigluForward<T> op{out.data_as<T>(), gate.data_as<T>(), up.data_as<T>()};
    launch_elementwise(gate.numel(), packs_aligned(op.out, op.gate, op.up), stream_of(gate), op);
  });
}

void swiglu_rows(const Tensor& out, const Tensor& gate_up) {
  dispatch_floating(gate_up.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    const SwigluRows<T> op{out.data_as<T>(), gate_up.data_as<T>(), out.size(-1)};
    const bool aligned = op.f % kPack == 0 && packs_aligned(op.out, op.gate_up);
    launch_elementwise(out.numel(), aligned, stream_of(out), op);
  });
}

void swiglu_backward(const Tensor& dgate, const Tensor& dup, const Tensor& dout, const Tensor& gate,
                     const Tensor& up) {
  dispatch_floating(gate.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    const SwigluBackward<T> op{dgate.data_as<T>(), dup.data_as<T>(), dout.data_as<T>(), gate.data_as<T>(),
                               up.data_as<T>()};
    launch_elementwise(gate.numel(), packs_aligned(op.dgate, op.dup, op.dout, op.gate, op.up), stream_of(gate), op);
  });
}

}  // namespace tessera::cuda
