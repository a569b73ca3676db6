// CUDA causal GQA attention (flash-style, fp32 softmax). Called by kernels/ops.cpp after argument checks.
#pragma once

#include "core/tensor.h"
#include "kernels/attention_shape.h"

namespace tessera::cuda {

void attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                       float softmax_scale, const Tensor& segment_ids, const AttentionShape& s);
void attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dout, const Tensor& q,
                        const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse, float softmax_scale,
                        const Tensor& segment_ids, const AttentionShape& s);

}  // namespace tessera::cuda
