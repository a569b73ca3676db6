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

// Causal softmax attention with grouped-query heads (GQA/MQA), fp32 softmax and accumulation.
// q [B, S, Hq, D], k and v [B, S, Hkv, D] with Hq % Hkv == 0: query head h reads kv head
// h / (Hq / Hkv). out [B, S, Hq, D] like q; lse [B, Hq, S] f32 holds the log-sum-exp of each
// query's scaled scores, for the backward pass. q, k, v and out share a floating dtype.
// Query i sees key j when j <= i and, given segment_ids [B, S] i32 (packed documents),
// segment_ids[j] == segment_ids[i].
void attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                       float softmax_scale, const Tensor& segment_ids = Tensor());
// Gradients of attention_forward, written (not accumulated) into dq, dk, dv (shapes and dtypes of
// q, k, v); dk and dv sum over the query heads sharing a kv head. out and lse come from the forward.
void attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dout,
                        const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                        float softmax_scale, const Tensor& segment_ids = Tensor());

}  // namespace tessera::ops
