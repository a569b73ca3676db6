// The op table: every numeric op Tessera uses, one function each, dispatching on the device of
// its tensors. kernels/cpu holds the readable fp32 reference of each op; kernels/cuda the fast
// version; tests/kernels compares the two on fresh random inputs.
//
// Conventions: outputs come first and are preallocated by the caller; all tensors of one call
// live on the same device; CUDA ops are queued on the device's current stream.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace tessera::ops {

// t[i] = value.
void fill(const Tensor& t, float value);

// t[i] = low + (high - low) * U(seed, offset + i): identical on CPU and GPU (core/rng.h).
void fill_uniform(const Tensor& t, uint64_t seed, uint64_t offset, float low, float high);
// t[i] = mean + std * N(seed, offset + i).
void fill_normal(const Tensor& t, uint64_t seed, uint64_t offset, float mean, float std);

// dst[i] = src[i] converted to dst's dtype (f32, bf16, f16 among themselves; equal dtypes for
// the rest). Equal element counts. Across devices the dtypes must be equal.
void copy(const Tensor& dst, const Tensor& src);
// A new tensor on src's device holding src converted to `dtype`.
Tensor cast(const Tensor& src, DType dtype);

// out[i] = alpha * a[i] + beta * b[i]; floating dtypes, all three alike; out may alias a or b.
void add(const Tensor& out, const Tensor& a, const Tensor& b, float alpha = 1.0f, float beta = 1.0f);
// out[i] = alpha * in[i]; out may alias in.
void scale(const Tensor& out, const Tensor& in, float alpha);

// Row-major C = alpha * op(A) @ op(B) + beta * C (+ bias broadcast over rows).
// Each operand is seen as 2-D by flattening all but its last dimension: A is [M, K] ([K, M] when
// trans_a), B is [K, N] ([N, K] when trans_b), C holds M x N elements with last dimension N.
// dtypes: A and B alike (f32, bf16 or f16); C f32 or A's dtype; bias [N] of C's dtype.
// Accumulation is fp32 on both backends.
void gemm(const Tensor& c, const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false,
          float alpha = 1.0f, float beta = 0.0f, const Tensor& bias = Tensor());

}  // namespace tessera::ops

namespace tessera::ops {

// AdamW hyper-parameters for one step; `step` counts from 1 (bias correction).
struct AdamWStep {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.0f;
  int64_t step = 1;
  float grad_scale = 1.0f;  // multiplies the gradient first (1 / accumulation, clipping)
};

// One decoupled-weight-decay Adam step on fp32 master weights, as torch.optim.AdamW does it:
// p *= 1 - lr * wd; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
// p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps), with g = grad * grad_scale.
// param, grad, m, v: f32, same size. `low` (optional, bf16/f16/f32, same size) receives the
// updated weights in its dtype in the same pass: the working copy for the next forward.
void adamw(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v, const AdamWStep& s,
           const Tensor& low = Tensor());

// out[0] += sum of x[i]^2 in fp32 (for gradient norms); out is f32 [1] on x's device.
void sum_squares(const Tensor& out, const Tensor& x);

}  // namespace tessera::ops
