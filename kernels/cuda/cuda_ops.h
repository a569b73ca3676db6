// CUDA kernels, one per op of kernels/ops.h. Called by kernels/ops.cpp after argument checks.
#pragma once

#include "core/tensor.h"
#include "kernels/gemm_shape.h"
#include "kernels/ops.h"

namespace tessera::cuda {

void fill(const Tensor& t, float value);
void fill_uniform(const Tensor& t, uint64_t seed, uint64_t offset, float low, float high);
void fill_normal(const Tensor& t, uint64_t seed, uint64_t offset, float mean, float std);
void copy(const Tensor& dst, const Tensor& src);
void add(const Tensor& out, const Tensor& a, const Tensor& b, float alpha, float beta);
void scale(const Tensor& out, const Tensor& in, float alpha);
void gemm(const Tensor& c, const Tensor& a, const Tensor& b, const GemmShape& s, float alpha, float beta,
          const Tensor& bias);

void embedding_forward(const Tensor& out, const Tensor& weight, const Tensor& ids);
void embedding_backward(const Tensor& dweight, const Tensor& dout, const Tensor& ids);
void rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& x, const Tensor& weight, float eps);
void rmsnorm_backward(const Tensor& dx, const Tensor& dweight, const Tensor& dout, const Tensor& x,
                      const Tensor& weight, const Tensor& rstd);
// rope_forward and rope_backward: sign is +1 to turn by angle, -1 to turn back.
void rope(const Tensor& x, const Tensor& positions, const Tensor& inv_freq, float attention_scaling, float sign);
void swiglu_forward(const Tensor& out, const Tensor& gate, const Tensor& up);
void swiglu_backward(const Tensor& dgate, const Tensor& dup, const Tensor& dout, const Tensor& gate,
                     const Tensor& up);
void cross_entropy_rows(const Tensor& loss, const Tensor& logits, const Tensor& labels, float grad_scale,
                        bool write_grad);

}  // namespace tessera::cuda

namespace tessera::cuda {
void adamw(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v, const ops::AdamWStep& s,
           const Tensor& low);
void sum_squares(const Tensor& out, const Tensor& x);
}  // namespace tessera::cuda
