// CPU reference for AdamW and the squared-norm reduction.
#include <cmath>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/f32_view.h"

namespace tessera::cpu {

void adamw(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v, const ops::AdamWStep& s,
           const Tensor& low) {
  float* p = param.data_as<float>();
  const float* g = grad.data_as<float>();
  float* pm = m.data_as<float>();
  float* pv = v.data_as<float>();
  const float bc1 = 1.0f - std::pow(s.beta1, static_cast<float>(s.step));
  const float bc2 = 1.0f - std::pow(s.beta2, static_cast<float>(s.step));
  const float decay = 1.0f - s.lr * s.weight_decay;
  const int64_t n = param.numel();
#pragma omp parallel for if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i] * s.grad_scale;
    pm[i] = s.beta1 * pm[i] + (1.0f - s.beta1) * gi;
    pv[i] = s.beta2 * pv[i] + (1.0f - s.beta2) * gi * gi;
    const float denom = std::sqrt(pv[i] / bc2) + s.eps;
    p[i] = p[i] * decay - s.lr * (pm[i] / bc1) / denom;
  }
  if (low.defined()) store_f32(low.data(), p, low.dtype(), n);
}

void sum_squares(const Tensor& out, const Tensor& x) {
  F32In in(x);
  const float* p = in.data();
  double total = 0;
  const int64_t n = x.numel();
#pragma omp parallel for reduction(+ : total) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) total += double(p[i]) * p[i];
  out.data_as<float>()[0] += static_cast<float>(total);
}

}  // namespace tessera::cpu
