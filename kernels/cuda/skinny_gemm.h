// The tensor-core skinny gemm for a few rows against a weight (decode batches: M <= 64 tokens
// times W^T, W [N, K] row-major in bf16/f16), reading each weight byte once. kernels/cuda/small_m.h
// decides when it runs.
#pragma once

#include "core/tensor.h"
#include "kernels/gemm_shape.h"

namespace tessera::cuda {

constexpr int kSkinnyMaxRows = 64;

// c = alpha * a @ b^T + beta * c for 1 <= M <= kSkinnyMaxRows; the caller has checked the shapes
// (bf16/f16, K % 8 == 0, contiguous rows, 16-byte aligned). split: among how many warps of a block
// K is divided (1, 2, 4, 8), 0 to choose from the shape.
void skinny_gemm(const Tensor& c, const Tensor& a, const Tensor& b, const GemmShape& s, float alpha, float beta,
                 int split);

// The split that split = 0 picks for an [N, K] weight on a device of `sms` SMs.
int skinny_split_for(int64_t n, int64_t k, int sms);

}  // namespace tessera::cuda
