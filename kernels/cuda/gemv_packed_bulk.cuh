// The bulk-copy packed gemv of kernels/cuda/gemv_packed_bulk.cu (int4 at 1-2 rows of A, int8 at
// 1-8), one of fused_gemv_mma's choices.
#pragma once

#include "core/tensor.h"
#include "kernels/cuda/gemv_packed_out.cuh"
#include "kernels/packed_pairs.h"
#include "kernels/quant_format.h"

namespace tessera::cuda {

// Whether it takes weight w (int4 or int8) at m rows of A: an sm_90 device, m <= 2 (int4) or 8
// (int8), K a whole number of its chunks (1024 weights at least, 2048 for int4 groups of 128), the parts
// 16-byte aligned, and the chunks' ring and the staged A within its shared memory.
bool gemv_bulk_fits(const PackedTensor& w, int64_t k, int m, int device);

// The stack's products (`tiles` tiles of 16 rows, stack_tiles) for rows m0 .. m0 + m - 1 of A
// (bf16 or f16, [*, k]); the stack's outputs already start at row m0.
// (spec: the weights' one spec).
void launch_gemv_bulk(const PackedStack<packed_pairs::Int4WidePairs>& stack, const QuantSpec& spec, int tiles,
                      DType c_dtype, const Tensor& a, int64_t m0, int64_t k, int m, float alpha, float beta);
void launch_gemv_bulk(const PackedStack<packed_pairs::Int8Pairs>& stack, const QuantSpec& spec, int tiles,
                      DType c_dtype, const Tensor& a, int64_t m0, int64_t k, int m, float alpha, float beta);

}  // namespace tessera::cuda
