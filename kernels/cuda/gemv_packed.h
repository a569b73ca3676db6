// The fused gemv of kernels/cuda/gemv_packed.cu, for kernels/cuda/gemm_packed.cu to choose.
#pragma once

#include <string>

#include "core/tensor.h"
#include "kernels/gemm_shape.h"
#include "kernels/quant_format.h"

namespace tessera::cuda {

// Empty when fused_gemv can compute this product; otherwise why not (K not a multiple of 16, A
// or the codes misaligned, or not C = A W^T).
std::string fused_gemv_unfit(const Tensor& a, const PackedTensor& w, const GemmShape& s);

// C = alpha A W^T + beta C (+ bias), checked by ops::gemm_packed and fit as above.
void fused_gemv(const Tensor& c, const Tensor& a, const PackedTensor& w, const GemmShape& s, float alpha, float beta,
                const Tensor& bias);

}  // namespace tessera::cuda
