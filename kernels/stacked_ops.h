// Ops on a stacked projection's output: one gemm against weights stacked row after row ([q; k; v]
// or [gate; up], src/model/stacked_projections.h) gives each token one row holding each
// projection's outputs side by side; these ops read those rows where they lie. Each gives the
// numbers of its kernels/ops.h op on the parts taken apart (the CPU's reference does just that).
// (Declared here rather than in ops.h, which every CUDA file includes.)
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace tessera::ops {

// ops::rope_paged_attention with the step's q, k and v as qkv [T, Hq + 2 Hkv, D]: each token's
// Hq query heads, then its Hkv key heads, then its Hkv value heads (Hq is out's [T, Hq, D], Hkv
// the cache's). qkv is consumed (its contents afterwards are unspecified).
void rope_paged_attention_stacked(const Tensor& qkv, const Tensor& positions, const Tensor& inv_freq,
                                  float attention_scaling, const Tensor& q_norm, const Tensor& k_norm, float eps,
                                  const Tensor& slots, Tensor& k_cache, Tensor& v_cache, const Tensor& block_tables,
                                  const Tensor& query_seq, int64_t window, float scale, Tensor& out);

// ops::swiglu_forward(out, gate, up) with gate and up the halves of gate_up [T, 2F]'s rows; out [T, F].
void swiglu_stacked(const Tensor& out, const Tensor& gate_up);

}  // namespace tessera::ops
