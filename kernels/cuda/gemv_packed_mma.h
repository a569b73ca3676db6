// The tensor-core fused gemv of kernels/cuda/gemv_packed_mma.cu, one of fused_gemv's variants.
#pragma once

#include "core/tensor.h"
#include "kernels/cuda/gemv_packed.h"
#include "kernels/gemm_shape.h"
#include "kernels/quant_format.h"

namespace tessera::cuda {

// Whether it computes this product: A bf16 or f16 (C any floating dtype), any scheme but nf4.
bool fused_gemv_mma_fits(const Tensor& a, const PackedTensor& w);

// How it reads int4 codes: a unit (8 bytes) a load, 4 in flight a row (Units, variant mma), or 32
// weights (16 bytes, one scale) a load, 2 or 4 in flight (Wide2, Wide4: variants wide, wide4), or as
// Wide4 with each group's scale applied to its fp32 sum (Group: 1-2 rows of A; more read Wide4), or
// that arithmetic streamed by persistent blocks (Stream: kernels/cuda/gemv_packed_stream.cu; 1-2
// rows; more read Wide4; int8 streams too, at 1-8 rows). Other schemes, and int4 codes not 16-byte
// aligned, read units. (A bulk-copy form feeding the stream's arithmetic through shared memory,
// TESSERA_PACKED_GEMV=bulk, was slower everywhere, session 11 call D1: 8B int4 decode 247.5 tok/s
// against 387.4; removed.)
enum class MmaInt4Reads { Units, Wide2, Wide4, Group, Stream };

// The products p (fused_gemv_takes them, and fused_gemv_mma_fits their first weight); its warps
// per block (4, 8 or 16, splitting K) chosen by the rows.
void fused_gemv_mma(const PackedProducts& p, const Tensor& a, const GemmShape& s, float alpha, float beta,
                    MmaInt4Reads reads = MmaInt4Reads::Units);

}  // namespace tessera::cuda
