// The CUDA-core gemv for a few rows against a weight (decode steps: M <= 4 tokens times W^T, W
// [N, K] row-major in bf16/f16), one warp per weight row. kernels/cuda/small_m.h decides when it
// runs.
#pragma once

#include "core/tensor.h"
#include "kernels/gemm_shape.h"

namespace tessera::cuda {

constexpr int kGemvMaxRows = 4;  // beyond, converting A's rows costs as much ALU as the weight's bytes

// c = alpha * a @ b^T + beta * c for 1 <= M <= kGemvMaxRows; the caller has checked the shapes
// (small_m_eligible).
void gemv_rows(const Tensor& c, const Tensor& a, const Tensor& b, const GemmShape& s, float alpha, float beta);

}  // namespace tessera::cuda
