// The tensor-core fused gemv of kernels/cuda/gemv_packed_mma.cu, one of fused_gemv's variants.
#pragma once

#include "core/tensor.h"
#include "kernels/gemm_shape.h"
#include "kernels/quant_format.h"

namespace tessera::cuda {

// Whether it computes this product: A bf16 or f16 (C any floating dtype), any scheme but nf4.
bool fused_gemv_mma_fits(const Tensor& a, const PackedTensor& w);

// How it reads int4 codes: a unit (8 bytes) a load, 4 in flight a row (Units, variant mma), or 32
// weights (16 bytes, one scale) a load, 2 or 4 in flight (Wide2, Wide4: variants wide, wide4), or as
// Wide4 with each group's scale applied to its fp32 sum (Group: 1-2 rows of A; more read Wide4).
// Other schemes, and int4 codes not 16-byte aligned, read units.
enum class MmaInt4Reads { Units, Wide2, Wide4, Group };

// C = alpha A W^T + beta C (+ bias), for a product that fused_gemv_unfit and fused_gemv_mma_fits
// accept; its warps per block (4, 8 or 16, splitting K) chosen by N.
void fused_gemv_mma(const Tensor& c, const Tensor& a, const PackedTensor& w, const GemmShape& s, float alpha, float beta,
                    const Tensor& bias, MmaInt4Reads reads = MmaInt4Reads::Units);

}  // namespace tessera::cuda
