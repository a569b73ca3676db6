// CPU reference for the SwiGLU MLP activation, rounding to the activation dtype where PyTorch's
// bf16 ops do: silu(gate) before the product, and each product of the backward.
#include <cmath>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/f32_view.h"

namespace tessera::cpu {

namespace {
// The formulas of PyTorch's silu kernels, so that the roundings land alike.
float silu(float g) { return g / (1.0f + std::exp(-g)); }
float sigmoid(float g) { return 1.0f / (1.0f + std::exp(-g)); }
}  // namespace

void swiglu_forward(const Tensor& out, const Tensor& gate, const Tensor& up) {
  const DType dt = gate.dtype();
  F32In g(gate), u(up);
  F32Out y(out, false);
  const int64_t n = out.numel();
#pragma omp parallel for if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) y.data()[i] = round_to(dt, silu(g.data()[i])) * u.data()[i];
  y.commit();
}

// d silu(g) / dg = s (1 + g (1 - s)) with s = sigmoid(g).
void swiglu_backward(const Tensor& dgate, const Tensor& dup, const Tensor& dout, const Tensor& gate,
                     const Tensor& up) {
  const DType dt = gate.dtype();
  F32In g(gate), u(up), dy(dout);
  F32Out dg(dgate, false), du(dup, false);
  const int64_t n = gate.numel();
#pragma omp parallel for if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g.data()[i], s = sigmoid(gi);
    du.data()[i] = dy.data()[i] * round_to(dt, silu(gi));
    dg.data()[i] = round_to(dt, dy.data()[i] * u.data()[i]) * s * (1.0f + gi * (1.0f - s));
  }
  dg.commit();
  du.commit();
}

}  // namespace tessera::cpu
