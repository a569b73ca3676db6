// The gemm path for a few rows against a weight matrix (decode steps: M <= 4 tokens times
// W^T, W [N, K] row-major in bf16/f16): a weight-streaming kernel instead of cuBLASLt, which reads
// W at a lower fraction of the bandwidth for such shapes. ops::gemm (kernels/cuda/gemm.cu) tries
// it first; TESSERA_SMALL_M_GEMV=0 in the environment turns it off (for comparing).
#pragma once

#include "core/tensor.h"
#include "kernels/gemm_shape.h"

namespace tessera::cuda {

// Runs c = alpha * a @ b^T + beta * c when the shapes suit the kernel (M <= 4, trans_b only, no
// bias, bf16/f16 operands with K a multiple of 8 and 16-byte aligned rows); false otherwise (the
// caller runs cuBLASLt).
bool small_m_gemm(const Tensor& c, const Tensor& a, const Tensor& b, const GemmShape& s, float alpha, float beta,
                  const Tensor& bias);

}  // namespace tessera::cuda
