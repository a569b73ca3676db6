// ops::gemm's path for a few rows against a weight (decode steps: M <= 4 tokens times W^T, W
// [N, K] row-major in bf16/f16): a weight-streaming kernel instead of cuBLASLt, which reads W at a
// lower fraction of the bandwidth for such shapes: the CUDA-core gemv (gemv.h, M <= 4) unless
// ops::small_m_choice() (TESSERA_SMALL_M=cublas) says cuBLASLt (or, TESSERA_SMALL_M=fused, says
// the gemv only inside the fused decode ops: small_m_gemm then declines).
#pragma once

#include "core/tensor.h"
#include "kernels/gemm_shape.h"

namespace tessera::cuda {

// Runs c = alpha * a @ b^T + beta * c with the chosen small-M kernel when the shapes suit it
// (trans_b only, no bias, bf16/f16 operands with K a multiple of 8 and 16-byte aligned rows, C
// contiguous) and the choice is not Fused; false otherwise (the caller runs cuBLASLt).
bool small_m_gemm(const Tensor& c, const Tensor& a, const Tensor& b, const GemmShape& s, float alpha, float beta,
                  const Tensor& bias);

// Whether the gemv runs a @ b^T of shape s (a bias aside: the fused forms of gemv.h add it
// themselves): the shapes suit it and the small-M choice is not cuBLASLt. The fused decode ops
// (project_many, project_swiglu) ask this of each weight.
bool gemv_takes(const Tensor& a, const Tensor& b, const GemmShape& s);

// ops::folds_into_gemv on the GPU: whether the gemv takes `rows` rows (16-byte aligned) against
// weight, and with `norm` whether its norm prologue takes them too.
bool gemv_folds(int64_t rows, const Tensor& weight, bool norm);

}  // namespace tessera::cuda
