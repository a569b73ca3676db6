// CPU reference for RMSNorm (Llama/Qwen): fp32 math, sums of squares and dot products in double,
// rounding intermediates to the activation dtype where HF does.
#include <cmath>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/f32_view.h"

namespace tessera::cpu {

void rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& x, const Tensor& weight, float eps) {
  const int64_t d = x.size(-1), rows = x.numel() / d;
  F32In in(x), w(weight);
  F32Out y(out, false);
  float* r = rstd.data_as<float>();
#pragma omp parallel for if (rows * d > (1 << 16))
  for (int64_t n = 0; n < rows; ++n) {
    const float* xn = in.data() + n * d;
    double squares = 0;
    for (int64_t j = 0; j < d; ++j) squares += double(xn[j]) * xn[j];
    r[n] = static_cast<float>(1.0 / std::sqrt(squares / d + eps));
    for (int64_t j = 0; j < d; ++j) y.data()[n * d + j] = round_to(x.dtype(), xn[j] * r[n]) * w.data()[j];
  }
  y.commit();
}

void add_rmsnorm_forward(const Tensor& sum, const Tensor& out, const Tensor& rstd, const Tensor& a, const Tensor& b,
                         const Tensor& weight, float eps) {
  add(sum, a, b, 1.0f, 1.0f);
  rmsnorm_forward(out, rstd, sum, weight, eps);
}

// With n = x * rstd and y = n * w: dx = rstd * (dn - n * mean(dn * n)) where dn = dy * w (rounded
// to the product's dtype, the weight's, as autograd does), and dweight += sum over rows of dy * n.
void rmsnorm_backward(const Tensor& dx, const Tensor& dweight, const Tensor& dout, const Tensor& x,
                      const Tensor& weight, const Tensor& rstd) {
  const int64_t d = x.size(-1), rows = x.numel() / d;
  F32In in(x), w(weight), dy(dout);
  F32Out grad(dx, false);
  const float* r = rstd.data_as<float>();
#pragma omp parallel for if (rows * d > (1 << 16))
  for (int64_t n = 0; n < rows; ++n) {
    const float *xn = in.data() + n * d, *dyn = dy.data() + n * d;
    double dot = 0;
    for (int64_t j = 0; j < d; ++j) dot += double(round_to(weight.dtype(), dyn[j] * w.data()[j])) * xn[j];
    const float c = static_cast<float>(dot / d) * r[n] * r[n];
    for (int64_t j = 0; j < d; ++j)
      grad.data()[n * d + j] = r[n] * (round_to(weight.dtype(), dyn[j] * w.data()[j]) - xn[j] * c);
  }
  grad.commit();
  if (!dweight.defined()) return;  // a frozen weight
  float* dw = dweight.data_as<float>();
#pragma omp parallel for if (rows * d > (1 << 16))
  for (int64_t j = 0; j < d; ++j) {
    double sum = 0;
    for (int64_t n = 0; n < rows; ++n)
      sum += double(dy.data()[n * d + j]) * round_to(x.dtype(), in.data()[n * d + j] * r[n]);
    dw[j] += static_cast<float>(sum);
  }
}

}  // namespace tessera::cpu
