// The CUDA-core gemv for a few rows against a weight (decode steps: M <= 4 tokens times W^T, W
// [N, K] row-major in bf16/f16), one warp per weight row. kernels/cuda/small_m.h decides when it
// runs. Its two fused forms serve a decode step's layer: several weights sharing one input in one
// launch (q/k/v), and gate/up with the SwiGLU in the epilogue. Both may norm A first (a decode
// layer's input and post-attention norms: gemv_io.cuh's prologue), and the first may write
// residual + product (o_proj and down_proj with the residual add): a layer then needs no norm or
// add launch of its own.
#pragma once

#include <span>

#include "core/tensor.h"
#include "kernels/gemm_shape.h"
#include "kernels/input_norm.h"

namespace tessera::cuda {

constexpr int kGemvMaxRows = 4;     // beyond, converting A's rows costs as much ALU as the weight's bytes
constexpr int kGemvMaxWeights = 3;  // weights one gemv_rows_many launch takes (q, k, v)

// Whether the norm prologue takes m rows of k elements of dtype (they live in shared memory).
bool gemv_norm_fits(int64_t m, int64_t k, DType dtype);

// c = alpha * a @ b^T + beta * c for 1 <= M <= kGemvMaxRows; the caller has checked the shapes
// (small_m.cu's gemv_takes).
void gemv_rows(const Tensor& c, const Tensor& a, const Tensor& b, const GemmShape& s, float alpha, float beta);

// outs[i] = a @ weights[i]^T (+ biases[i] where defined) in one launch, each output exactly what
// gemv_rows gives it (plus the bias before the rounding): a [m, k], weights[i] [n_i, k] each
// suiting the gemv, outs[i] [m, n_i] of a's dtype, at most kGemvMaxWeights. With norm.weight,
// a is first normed (bit for bit rmsnorm_forward; gemv_norm_fits must hold); with residuals[i]
// defined ([m, n_i], may be outs[i] itself), outs[i] = residuals[i] + the rounded product,
// rounded (bit for bit ops::add after the plain output).
void gemv_rows_many(std::span<const Tensor> outs, const Tensor& a, std::span<const Tensor> weights,
                    std::span<const Tensor> biases, int64_t m, int64_t k, const InputNorm& norm = {},
                    std::span<const Tensor> residuals = {});

// out [m, n] = silu(g) * u with g = a @ gate^T and u = a @ up^T, each rounded to a's dtype as
// gemv_rows rounds them, and the product rounded as swiglu_forward does: bit for bit the three ops
// (with norm.weight: after rmsnorm_forward of a, as gemv_rows_many).
void gemv_rows_swiglu(const Tensor& out, const Tensor& a, const Tensor& gate, const Tensor& up, int64_t m, int64_t k,
                      const InputNorm& norm = {});

}  // namespace tessera::cuda
