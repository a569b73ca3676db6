// The last step of both fused packed gemvs (gemv_packed.cu, gemv_packed_mma.cu): the warps' sums
// of a block's outputs added up and stored.
#pragma once

#include "core/dtype.h"
#include "kernels/cuda/cuda_common.cuh"

namespace tessera::cuda {

// C[at] = alpha sum (+ beta C[at]) (+ bias[row]) in C's dtype (bf16, f16 or f32; bias in C's);
// beta 0 does not read C.
__device__ __forceinline__ void store_gemv_out(void* c, DType c_dtype, int64_t at, int64_t row, float sum, float alpha,
                                               float beta, const void* bias) {
  auto finish = [&](auto* out, const auto* b) {
    float v = alpha * sum;
    if (beta != 0.0f) v += beta * to_f32(out[at]);
    if (b) v += to_f32(b[row]);
    out[at] = from_f32<std::remove_pointer_t<decltype(out)>>(v);
  };
  switch (c_dtype) {
    case DType::BF16:
      return finish(static_cast<__nv_bfloat16*>(c), static_cast<const __nv_bfloat16*>(bias));
    case DType::F16: return finish(static_cast<__half*>(c), static_cast<const __half*>(bias));
    default: return finish(static_cast<float*>(c), static_cast<const float*>(bias));
  }
}

// Thread e of a block whose warps left their sums of its kOutputs outputs in partial[warp][e]:
// output e is row row0 + e / kCols of W (column of C) and row e % kCols of A; rows of W past n
// and of A past m are not stored.
template <int kWarps, int kOutputs, int kCols>
__device__ __forceinline__ void store_block_out(const float (&partial)[kWarps][kOutputs], int e, int64_t row0, int64_t n,
                                                int m, void* c, DType c_dtype, float alpha, float beta,
                                                const void* bias) {
  if (e >= kOutputs) return;
  const int64_t row = row0 + e / kCols;
  const int i = e % kCols;
  if (row >= n || i >= m) return;
  float sum = 0.0f;
#pragma unroll
  for (int w = 0; w < kWarps; ++w) sum += partial[w][e];
  store_gemv_out(c, c_dtype, i * n + row, row, sum, alpha, beta, bias);
}

}  // namespace tessera::cuda
