#include "kernels/plain_sequences.h"

#include "kernels/ops.h"

namespace tessera::ops::plain {

Tensor normed_input(const Tensor& x, const InputNorm& norm) {
  if (!norm.defined()) return x;
  const int64_t k = x.size(-1), rows = x.numel() / k;
  Tensor h = Tensor::empty({rows, k}, x.dtype(), x.device()), rstd = Tensor::empty({rows}, DType::F32, x.device());
  rmsnorm_forward(h, rstd, x.view({rows, k}), norm.weight, norm.eps);
  return h;
}

void project_many(std::span<const Tensor> outs, const Tensor& x, std::span<const Tensor> weights,
                  std::span<const Tensor> biases, const InputNorm& norm) {
  const Tensor h = normed_input(x, norm);
  for (size_t i = 0; i < weights.size(); ++i)
    gemm(outs[i], h, weights[i], false, true, 1.0f, 0.0f, biases.empty() ? Tensor() : biases[i]);
}

void project_swiglu(const Tensor& out, const Tensor& x, const Tensor& gate, const Tensor& up, const InputNorm& norm) {
  const Tensor h = normed_input(x, norm);
  Tensor g = Tensor::empty(out.shape(), out.dtype(), out.device()), u = Tensor::empty(out.shape(), out.dtype(), out.device());
  gemm(g, h, gate, false, true);
  gemm(u, h, up, false, true);
  swiglu_forward(out, g, u);
}

void project_add(const Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& residual, const Tensor& bias) {
  Tensor y = Tensor::empty(out.shape(), out.dtype(), out.device());
  gemm(y, x, weight, false, true, 1.0f, 0.0f, bias);
  add(out, residual, y);
}

}  // namespace tessera::ops::plain
