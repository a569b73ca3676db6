// CUDA project_many and project_swiglu: the gemv's fused forms (gemv.h) where it takes every
// weight (a decode step of up to 4 sequences), else the plain ops one after another (cuBLASLt).
#include <vector>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/gemv.h"
#include "kernels/cuda/small_m.h"

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

}  // namespace tessera::cuda
