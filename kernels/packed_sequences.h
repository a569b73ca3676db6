// What project_many_packed and project_swiglu_packed (kernels/ops.h) stand for, as a backend runs
// it with its own gemm_packed and swiglu_forward: the CPU's reference, and the GPU's path where the
// fused packed gemv does not take the products.
#pragma once

#include <span>

#include "core/tensor.h"
#include "kernels/gemm_shape.h"
#include "kernels/quant_format.h"

namespace tessera {

// outs[i] = x W_i^T + biases[i], one gemm_packed (the backend's) each.
template <typename GemmPacked>
void packed_products(std::span<const Tensor> outs, const Tensor& x, std::span<const PackedTensor* const> weights,
                     std::span<const Tensor> biases, std::span<const GemmShape> shapes, GemmPacked gemm_packed) {
  for (size_t i = 0; i < weights.size(); ++i)
    if (shapes[i].n > 0)
      gemm_packed(outs[i], x, *weights[i], shapes[i], 1.0f, 0.0f, biases.empty() ? Tensor() : biases[i],
                  PackedGemmKernel::Auto);
}

// out = swiglu(x gate^T, x up^T): both products into out's dtype, then swiglu(out, g, u).
template <typename GemmPacked, typename Swiglu>
void packed_swiglu(const Tensor& out, const Tensor& x, const PackedTensor& gate, const PackedTensor& up,
                   const GemmShape& s, GemmPacked gemm_packed, Swiglu swiglu) {
  const Tensor g = Tensor::empty(out.shape(), out.dtype(), out.device()), u = Tensor::empty(out.shape(), out.dtype(), out.device());
  gemm_packed(g, x, gate, s, 1.0f, 0.0f, Tensor(), PackedGemmKernel::Auto);
  gemm_packed(u, x, up, s, 1.0f, 0.0f, Tensor(), PackedGemmKernel::Auto);
  swiglu(out, g, u);
}

}  // namespace tessera
