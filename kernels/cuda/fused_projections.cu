// CUDA project_many and project_swiglu: the gemv's fused forms (gemv.h) where it takes every
// weight (a decode step of up to 4 sequences), else the plain ops one after another (cuBLASLt).
// Their packed forms: the fused packed gemv (gemv_packed.h) where it takes every weight, else
// gemm_packed one weight after another.
#include <vector>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/gemv.h"
#include "kernels/cuda/gemv_packed.h"
#include "kernels/cuda/small_m.h"
#include "kernels/packed_sequences.h"

namespace tessera::cuda {

void project_many(std::span<const Tensor> outs, const Tensor& x, std::span<const Tensor> weights,
                  std::span<const Tensor> biases, std::span<const GemmShape> shapes) {
  bool fused = weights.size() <= kGemvMaxWeights;
  for (size_t i = 0; i < weights.size() && fused; ++i) fused = gemv_takes(x, weights[i], shapes[i]);
  if (fused) return gemv_rows_many(outs, x, weights, biases, shapes[0].m, shapes[0].k);
  for (size_t i = 0; i < weights.size(); ++i)
    if (shapes[i].n > 0) gemm(outs[i], x, weights[i], shapes[i], 1.0f, 0.0f, biases.empty() ? Tensor() : biases[i]);
}

void project_swiglu(const Tensor& out, const Tensor& x, const Tensor& gate, const Tensor& up, const GemmShape& s) {
  if (gemv_takes(x, gate, s) && gemv_takes(x, up, s)) return gemv_rows_swiglu(out, x, gate, up, s.m, s.k);
  Tensor g = Tensor::empty(out.shape(), out.dtype(), out.device()), u = Tensor::empty(out.shape(), out.dtype(), out.device());
  gemm(g, x, gate, s, 1.0f, 0.0f, Tensor());
  gemm(u, x, up, s, 1.0f, 0.0f, Tensor());
  swiglu_forward(out, g, u);
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
