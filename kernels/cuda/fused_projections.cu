// CUDA project_many, project_swiglu and project_add: the gemv's fused forms (gemv.h), input norm
// and residual add included, where it takes every weight (a decode step of up to 4 sequences),
// else the plain ops one after another (kernels/plain_sequences.h: rmsnorm_forward, cuBLASLt, add).
// Their packed forms: the fused packed gemv (gemv_packed.h) where it takes every weight, else
// gemm_packed one weight after another.
#include <vector>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/gemv.h"
#include "kernels/cuda/gemv_packed.h"
#include "kernels/cuda/small_m.h"
#include "kernels/packed_sequences.h"
#include "kernels/plain_sequences.h"

namespace tessera::cuda {

namespace {

// Whether the gemv runs x @ w^T of shape s with `norm` in its prologue.
bool gemv_runs(const Tensor& x, const Tensor& w, const GemmShape& s, const InputNorm& norm) {
  return gemv_takes(x, w, s) && (!norm.defined() || gemv_norm_fits(s.m, s.k, x.dtype()));
}

}  // namespace

void project_many(std::span<const Tensor> outs, const Tensor& x, std::span<const Tensor> weights,
                  std::span<const Tensor> biases, std::span<const GemmShape> shapes, const InputNorm& norm) {
  bool fused = weights.size() <= kGemvMaxWeights;
  for (size_t i = 0; i < weights.size() && fused; ++i) fused = gemv_runs(x, weights[i], shapes[i], norm);
  if (fused) return gemv_rows_many(outs, x, weights, biases, shapes[0].m, shapes[0].k, norm);
  ops::plain::project_many(outs, x, weights, biases, norm);
}

void project_swiglu(const Tensor& out, const Tensor& x, const Tensor& gate, const Tensor& up, const GemmShape& s,
                    const InputNorm& norm) {
  if (gemv_runs(x, gate, s, norm) && gemv_runs(x, up, s, norm))
    return gemv_rows_swiglu(out, x, gate, up, s.m, s.k, norm);
  ops::plain::project_swiglu(out, x, gate, up, norm);
}

void project_add(const Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& residual, const Tensor& bias,
                 const GemmShape& s) {
  if (gemv_takes(x, weight, s)) {
    const Tensor outs[] = {out}, weights[] = {weight}, biases[] = {bias}, residuals[] = {residual};
    return gemv_rows_many(outs, x, weights, biases, s.m, s.k, {}, residuals);
  }
  ops::plain::project_add(out, x, weight, residual, bias);
}

void project_many_packed(std::span<const Tensor> outs, const Tensor& x, std::span<const PackedTensor* const> weights,
                         std::span<const Tensor> biases, std::span<const GemmShape> shapes) {
  const PackedProducts p{outs, weights, biases};
  if (fused_gemv_takes(x, p, shapes[0])) return fused_gemv(p, x, shapes[0], 1.0f, 0.0f);
  packed_products(outs, x, weights, biases, shapes, gemm_packed);
}

void project_swiglu_packed(const Tensor& out, const Tensor& x, const PackedTensor& gate, const PackedTensor& up,
                           const GemmShape& s) {
  const Tensor outs[] = {out};
  const PackedTensor* weights[] = {&gate, &up};
  const PackedProducts p{outs, weights, {}, true};
  if (fused_gemv_takes(x, p, s)) return fused_gemv(p, x, s, 1.0f, 0.0f);
  packed_swiglu(out, x, gate, up, s, gemm_packed, swiglu_forward);
}

}  // namespace tessera::cuda
