// GPTQ (Frantar et al., 2022) for one weight matrix: quantize W [out, in] column by column on a
// scheme's own grid (quant/gptq_grid.h) so that the layer's outputs X W^T change as little as
// possible for inputs X, whose statistics come in as the Hessian H = 2 X^T X / n [in, in].
// Dampening, the upper Cholesky factor U of H^-1, then for each block of columns: quantize a
// column, spread its error (w - q) / U[j, j] over the block's later columns through U's row, and
// after the block update the rest at once (the lazy batch update). With act-order the columns go
// by decreasing diag(H); a group's parameters are chosen when its first column comes up, and the
// groups stay the scheme's own contiguous ones, so the result packs like any other.
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "kernels/quant_format.h"

namespace tessera::quant {

struct GptqOptions {
  int64_t block_size = 128;  // columns per lazy batch update
  double damp = 0.01;        // added to diag(H): damp x mean(diag(H))
  bool act_order = false;    // columns by decreasing diag(H)
};

struct GptqStats {
  double loss = 0;  // GPTQ's objective: sum over columns of (w - q)^2 / (2 U[j, j]^2)
};

// W (f32, host, [out, in]) quantized under `spec` against `hessian` (f32, host, [in, in],
// symmetric). A column whose inputs were always zero (diag 0) is quantized as zero. An Error
// naming `what` when the dampened H is not positive definite (a larger damp helps).
PackedTensor gptq_quantize(const Tensor& weight, const Tensor& hessian, const QuantSpec& spec,
                           const GptqOptions& options, const std::string& what, GptqStats* stats = nullptr);

// hessian (f32 [in, in]) += alpha x^T x for activations x (floating, any dtype) seen as rows of
// `in` features (e.g. attention outputs [T, heads, head_dim]), on x's device through ops::gemm; alpha = 2 / (all tokens) sums to GPTQ's H.
void accumulate_hessian(const Tensor& hessian, const Tensor& x, float alpha);

}  // namespace tessera::quant
