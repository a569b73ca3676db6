// The fused gemv of kernels/cuda/gemv_packed.cu, for kernels/cuda/gemm_packed.cu to choose.
#pragma once

#include <span>
#include <string>

#include "core/tensor.h"
#include "kernels/gemm_shape.h"
#include "kernels/quant_format.h"

namespace tessera::cuda {

// Empty when fused_gemv can compute this product; otherwise why not (K not a multiple of 16, A
// or the codes misaligned, or not C = A W^T).
std::string fused_gemv_unfit(const Tensor& a, const PackedTensor& w, const GemmShape& s);

// What one launch computes: outs[i] = alpha A W_i^T + beta outs[i] (+ biases[i]) for 1 to 3
// weights of one scheme and K (the fused decode's q, k and v), or with swiglu, weights gate and up
// of one shape, outs[0] = silu(A gate^T) * (A up^T) (alpha 1, beta 0, no biases). biases: empty
// or one per weight (undefined: none).
struct PackedProducts {
  std::span<const Tensor> outs;
  std::span<const PackedTensor* const> weights;
  std::span<const Tensor> biases;
  bool swiglu = false;
};

// Whether fused_gemv takes these products with A: fused_gemv_unfit accepts each weight, all of one
// scheme and spec and none without rows, at most 3 of them (2 for swiglu), s.m at most
// ops::kFusedPackedRows.
bool fused_gemv_takes(const Tensor& a, const PackedProducts& p, const GemmShape& s);

// The products, as checked by ops::gemm_packed / project_many_packed / project_swiglu_packed and
// fit as above; s is the first weight's product (m and k shared by all).
void fused_gemv(const PackedProducts& p, const Tensor& a, const GemmShape& s, float alpha, float beta);

// C = alpha A W^T + beta C (+ bias): one weight.
void fused_gemv(const Tensor& c, const Tensor& a, const PackedTensor& w, const GemmShape& s, float alpha, float beta,
                const Tensor& bias);

}  // namespace tessera::cuda
