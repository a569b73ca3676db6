// The streaming packed gemv of kernels/cuda/gemv_packed_stream.cu (int4, int8), one of fused_gemv_mma's choices.
#pragma once

#include "core/tensor.h"
#include "kernels/cuda/gemv_packed_out.cuh"
#include "kernels/packed_pairs.h"
#include "kernels/quant_format.h"

namespace tessera::cuda {

// Whether it takes m rows of A at this K for the scheme: int4 at 1-2 rows (the sums of x fit its
// shared memory), int8 at 1-8.
bool gemv_stream_fits(QuantScheme scheme, int64_t k, int m);

// The stack's products (`tiles` tiles of 16 rows, stack_tiles) for rows m0 .. m0 + m - 1 of A
// (bf16 or f16, [*, k]); the stack's outputs already start at row m0.
void launch_gemv_stream(const PackedStack<packed_pairs::Int4WidePairs>& stack, int tiles, DType c_dtype, const Tensor& a,
                        int64_t m0, int64_t k, int m, float alpha, float beta);
void launch_gemv_stream(const PackedStack<packed_pairs::Int8Pairs>& stack, int tiles, DType c_dtype, const Tensor& a,
                        int64_t m0, int64_t k, int m, float alpha, float beta);

}  // namespace tessera::cuda
