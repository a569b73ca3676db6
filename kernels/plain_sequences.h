// The sequences of plain ops that the fused decode ops of kernels/ops.h stand for, run op by op
// through the op table: the CPU backend's reference of those ops, and the GPU's path where the
// small-M gemv does not take the shapes. Each is the definition in ops.h, nothing more.
#pragma once

#include <span>

#include "core/tensor.h"
#include "kernels/input_norm.h"

namespace tessera::ops::plain {

// x, or its rows normed by `norm` (ops::rmsnorm_forward into a new tensor) where it is defined.
Tensor normed_input(const Tensor& x, const InputNorm& norm);

// ops::project_many: the norm, then one ops::gemm per weight.
void project_many(std::span<const Tensor> outs, const Tensor& x, std::span<const Tensor> weights,
                  std::span<const Tensor> biases, const InputNorm& norm);
// ops::project_swiglu: the norm, ops::gemm for gate and for up, ops::swiglu_forward.
void project_swiglu(const Tensor& out, const Tensor& x, const Tensor& gate, const Tensor& up, const InputNorm& norm);
// ops::project_add: ops::gemm, then ops::add.
void project_add(const Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& residual, const Tensor& bias);

}  // namespace tessera::ops::plain
