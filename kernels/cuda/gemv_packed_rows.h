// The int8 fused gemv streamed a weight row a warp (kernels/cuda/gemv_packed_rows.cu), one of
// fused_gemv's variants (TESSERA_PACKED_GEMV=rows).
#pragma once

#include "core/tensor.h"
#include "kernels/cuda/gemv_packed.h"
#include "kernels/gemm_shape.h"
#include "kernels/quant_format.h"

namespace tessera::cuda {

// Whether it computes products of w: int8 (one scale a row); other schemes run v1.
bool fused_gemv_rows_fits(const PackedTensor& w);

// The products p (fused_gemv_takes them, fused_gemv_rows_fits their weights), any rows of A (4 a
// launch) in any floating dtype.
void fused_gemv_rows(const PackedProducts& p, const Tensor& a, const GemmShape& s, float alpha, float beta);

}  // namespace tessera::cuda
