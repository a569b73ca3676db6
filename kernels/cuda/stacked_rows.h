// The CUDA ops' forms that read a stacked projection's output in place: one gemm against weights
// stacked row after row ([q; k; v] or [gate; up], src/model/stacked_projections.h) gives each
// token one row holding every projection's outputs side by side, so each input is a pointer and
// the elements from one token's row to the next.
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "kernels/attention_shape.h"

namespace tessera::cuda {

// A step's new queries, keys and values: token t's query heads start at q + t * q_row, its key
// and value heads at k and v + t * kv_row (elements of the cache's dtype). Three tensors
// [T, H, D] have rows Hq * D and Hkv * D; one [T, Hq + 2 Hkv, D] has both rows (Hq + 2 Hkv) * D.
struct QkvRows {
  void* q;
  void* k;
  const void* v;
  int64_t q_row, kv_row;
};
QkvRows separate_qkv_rows(const Tensor& q, const Tensor& k, const Tensor& v, const PagedShape& s);
QkvRows stacked_qkv_rows(const Tensor& qkv, const PagedShape& s);

// rope_kv_write and rope_paged_attention (cuda_ops.h) on rows in either layout.
void rope_kv_write_rows(const QkvRows& r, const Tensor& positions, const Tensor& inv_freq, float attention_scaling,
                        const Tensor& q_norm, const Tensor& k_norm, float eps, const Tensor& slots,
                        const Tensor& k_cache, const Tensor& v_cache, const PagedShape& s);
void rope_paged_attention_rows(const QkvRows& r, const Tensor& positions, const Tensor& inv_freq,
                               float attention_scaling, const Tensor& q_norm, const Tensor& k_norm, float eps,
                               const Tensor& slots, const Tensor& k_cache, const Tensor& v_cache,
                               const Tensor& block_tables, const Tensor& query_seq, int64_t window, float scale,
                               const Tensor& out, const PagedShape& s);

// swiglu_forward of gate_up [T, 2F]'s halves: out [T, F] = silu(gate_up[:, :F]) * gate_up[:, F:].
void swiglu_rows(const Tensor& out, const Tensor& gate_up);

}  // namespace tessera::cuda
