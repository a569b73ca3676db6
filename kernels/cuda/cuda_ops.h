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

}  // namespace tessera::cuda

namespace tessera::cuda {
void adamw(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v, const ops::AdamWStep& s,
           const Tensor& low);
void sum_squares(const Tensor& out, const Tensor& x);
}  // namespace tessera::cuda
