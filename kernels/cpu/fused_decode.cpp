// CPU references of a decode step's fused ops: by definition the sequences of plain ops they fuse
// (kernels/ops.h), so the CPU inference path gives the same numbers with them or without.
#include <vector>

#include "core/error.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/packed_sequences.h"
#include "kernels/plain_sequences.h"

namespace tessera::cpu {

void project_many(std::span<const Tensor> outs, const Tensor& x, std::span<const Tensor> weights,
                  std::span<const Tensor> biases, std::span<const GemmShape>, const InputNorm& norm) {
  ops::plain::project_many(outs, x, weights, biases, norm);
}

void project_swiglu(const Tensor& out, const Tensor& x, const Tensor& gate, const Tensor& up, const GemmShape&,
                    const InputNorm& norm) {
  ops::plain::project_swiglu(out, x, gate, up, norm);
}

void project_add(const Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& residual, const Tensor& bias,
                 const GemmShape&) {
  ops::plain::project_add(out, x, weight, residual, bias);
}

void project_many_packed(std::span<const Tensor> outs, const Tensor& x, std::span<const PackedTensor* const> weights,
                         std::span<const Tensor> biases, std::span<const GemmShape> shapes) {
  packed_products(outs, x, weights, biases, shapes, gemm_packed);
}

void project_swiglu_packed(const Tensor& out, const Tensor& x, const PackedTensor& gate, const PackedTensor& up,
                           const GemmShape& s) {
  packed_swiglu(out, x, gate, up, s, gemm_packed, swiglu_forward);
}

namespace {

// rmsnorm_forward on each head row of x [T, H, D], in place.
void norm_heads(const Tensor& x, const Tensor& weight, float eps) {
  const int64_t d = x.size(2), rows = x.numel() / d;
  Tensor normed = Tensor::empty({rows, d}, x.dtype(), x.device()), rstd = Tensor::empty({rows}, DType::F32, x.device());
  rmsnorm_forward(normed, rstd, x.view({rows, d}), weight, eps);
  copy_bytes(x, normed);
}

}  // namespace

void rope_kv_write(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& positions, const Tensor& inv_freq,
                   float attention_scaling, const Tensor& q_norm, const Tensor& k_norm, float eps, const Tensor& slots,
                   const Tensor& k_cache, const Tensor& v_cache, const PagedShape& s) {
  if (q_norm.defined()) {
    norm_heads(q, q_norm, eps);
    norm_heads(k, k_norm, eps);
  }
  rope(q, k, positions, inv_freq, attention_scaling, 1.0f);
  PagedShape kv = s;
  kv.hq = s.hkv;
  paged_kv_write(k, v, slots, k_cache, v_cache, kv);
}

void rope_paged_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& positions,
                          const Tensor& inv_freq, float attention_scaling, const Tensor& q_norm, const Tensor& k_norm,
                          float eps, const Tensor& slots, const Tensor& k_cache, const Tensor& v_cache,
                          const Tensor& block_tables, const Tensor& query_seq, int64_t window, float scale,
                          const Tensor& out, const PagedShape& s) {
  // One token per sequence: otherwise the GPU's single launch would let a token miss a key that
  // another of its sequence writes.
  const int32_t* seq = query_seq.data_as<int32_t>();
  std::vector<int64_t> token_of(s.seqs, -1);
  for (int64_t t = 0; t < s.tokens; ++t) {
    TS_CHECK(seq[t] >= 0 && seq[t] < s.seqs,
             "rope_paged_attention: query_seq[{}] = {} is not a row of the {} block tables", t, seq[t], s.seqs);
    TS_CHECK(token_of[seq[t]] < 0,
             "rope_paged_attention: query_seq[{}] = {} repeats query_seq[{}] (one token per sequence: a decode step)", t,
             seq[t], token_of[seq[t]]);
    token_of[seq[t]] = t;
  }
  rope_kv_write(q, k, v, positions, inv_freq, attention_scaling, q_norm, k_norm, eps, slots, k_cache, v_cache, s);
  paged_attention(q, k_cache, v_cache, block_tables, query_seq, positions, window, scale, out, s);
}

}  // namespace tessera::cpu
