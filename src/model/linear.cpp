#include "model/linear.h"

#include "core/error.h"
#include "kernels/ops.h"

namespace tessera {

namespace {

Tensor rows_of(const Tensor& t, int64_t cols) { return t.view({t.numel() / cols, cols}); }

// drop(x): x itself when dropout is off, else a fresh tensor.
Tensor dropped(const Tensor& x, const LoraDropout& d) {
  if (d.p == 0.0f) return x;
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  ops::dropout(out, x, d.p, d.key, d.first);
  return out;
}

}  // namespace

Tensor FakeQuantizer::apply_scaled(const Tensor&, const Tensor&, const Tensor&) const {
  fail("Linear: this fake quantizer has no learned scales");
}

void FakeQuantizer::backward_scaled(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                    const Tensor&) const {
  fail("Linear: this fake quantizer has no learned scales");
}

Tensor merged_lora_weight(const Tensor& w, const Tensor& a, const Tensor& b, float scale, DType dtype) {
  Tensor merged = ops::cast(w, DType::F32);
  ops::gemm(merged, ops::cast(b, DType::F32), ops::cast(a, DType::F32), false, false, scale, 1.0f);
  return dtype == DType::F32 ? merged : ops::cast(merged, dtype);
}

int64_t Linear::out_features() const {
  return weight.defined() ? weight.size(0) : packed ? packed->shape.at(0) : lora_b.size(0);
}
int64_t Linear::in_features() const {
  return weight.defined() ? weight.size(1) : packed ? packed->shape.at(1) : lora_a.size(1);
}

Tensor Linear::base_weight(DType dtype) const {
  if (!weight.defined()) {
    TS_CHECK(packed && packed->defined(), "Linear: no base weight (neither dense nor packed)");
    TS_CHECK(!fake_quant, "Linear: a packed base cannot be fake-quantized as well");
    Tensor w = Tensor::empty(packed->shape, dtype, packed->device());
    ops::dequantize(w, *packed);
    return w;
  }
  if (!fake_quant) return weight;
  const Tensor w = merged_qat() ? merged_lora_weight(weight, lora_a, lora_b, lora_scale, weight.dtype()) : weight;
  return learned_qat() ? fake_quant->apply_scaled(w, qat_scale, qat_zero) : fake_quant->apply(w);
}

void Linear::base_gemm(const Tensor& c, const Tensor& a, bool trans_w, float alpha, float beta,
                       const Tensor& bias) const {
  if (!weight.defined() && packed_matmul == PackedMatmul::gemm_packed) {
    TS_CHECK(packed && packed->defined(), "Linear: no base weight (neither dense nor packed)");
    return ops::gemm_packed(c, a, *packed, trans_w, alpha, beta, bias);
  }
  ops::gemm(c, a, base_weight(a.dtype()), false, trans_w, alpha, beta, bias);
}

Tensor Linear::input_rows(const Tensor& x) const {
  return rows_of(fake_quant ? fake_quant->input(x) : x, in_features());
}

Tensor Linear::forward(const Tensor& x, Tensor* lora_xa, const LoraDropout& dropout) const {
  const Tensor in = input_rows(x);
  const int64_t rows = in.size(0);
  Tensor y = Tensor::empty({rows, out_features()}, x.dtype(), x.device());
  TS_CHECK(!merged_qat() || dropout.p == 0.0f,
           "Linear: LoRA dropout with QAT (the merged weight is fake-quantized; the adapter has no input of its own)");
  base_gemm(y, in, /*trans_w=*/true, 1.0f, 0.0f, bias);
  if (!has_lora() || merged_qat()) return y;
  Tensor xa = Tensor::empty({rows, lora_a.size(0)}, x.dtype(), x.device());
  ops::gemm(xa, dropped(in, dropout), lora_a, false, true);
  ops::gemm(y, xa, lora_b, false, true, lora_scale, 1.0f);
  if (lora_xa) *lora_xa = xa;
  return y;
}

void Linear::backward(const Tensor& dy, const Tensor& x, const Tensor& lora_xa, Linear& grads, const Tensor& dx,
                      bool accumulate_dx, const LoraDropout& dropout) const {
  const Tensor g = rows_of(dy, out_features()), in = input_rows(x);
  const Tensor dx_rows = dx.defined() ? rows_of(dx, in_features()) : Tensor();
  if (merged_qat()) {
    merged_qat_backward(g, in, grads);
    if (grads.bias.defined()) ops::column_sum(grads.bias, g, /*accumulate=*/true);
    if (dx.defined()) base_gemm(dx_rows, g, /*trans_w=*/false, 1.0f, accumulate_dx ? 1.0f : 0.0f, Tensor());
    return;
  }
  if (learned_qat() && (grads.weight.defined() || grads.qat_scale.defined())) {
    // This pass's dW' on its own: the scales' gradients are sums over it (not over what grads.weight
    // accumulated before).
    Tensor G = Tensor::empty({out_features(), in_features()}, DType::F32, g.device());
    ops::gemm(G, g, in, true, false);
    qat_weight_backward(G, weight, grads);
    if (grads.weight.defined()) ops::add(grads.weight, grads.weight, G);
  } else if (grads.weight.defined()) {
    ops::gemm(grads.weight, g, in, true, false, 1.0f, 1.0f);
    if (fake_quant) fake_quant->mask_gradient(grads.weight, weight);
  }
  if (grads.bias.defined()) ops::column_sum(grads.bias, g, /*accumulate=*/true);
  if (dx.defined()) base_gemm(dx_rows, g, /*trans_w=*/false, 1.0f, accumulate_dx ? 1.0f : 0.0f, Tensor());
  if (!has_lora()) return;
  TS_CHECK(lora_xa.defined(), "Linear::backward: the LoRA branch needs the forward's x A^T");
  // y = ... + s u B^T with u = drop(x) A^T: dB += s dy^T u, du = s dy B, dA += du^T drop(x),
  // dx += drop'(du A).
  if (grads.lora_b.defined()) ops::gemm(grads.lora_b, g, lora_xa, true, false, lora_scale, 1.0f);
  if (!grads.lora_a.defined() && !dx.defined()) return;
  Tensor du = Tensor::empty({g.size(0), lora_a.size(0)}, dy.dtype(), dy.device());
  ops::gemm(du, g, lora_b, false, false, lora_scale);
  if (grads.lora_a.defined()) ops::gemm(grads.lora_a, du, dropped(in, dropout), true, false, 1.0f, 1.0f);
  if (!dx.defined()) return;
  if (dropout.p == 0.0f) return ops::gemm(dx_rows, du, lora_a, false, false, 1.0f, 1.0f);
  Tensor through = Tensor::empty(dx_rows.shape(), dx.dtype(), dx.device());
  ops::gemm(through, du, lora_a);
  ops::dropout(through, through, dropout.p, dropout.key, dropout.first);
  ops::add(dx_rows, dx_rows, through);
}

void Linear::merged_qat_backward(const Tensor& g, const Tensor& in, Linear& grads) const {
  if (!grads.weight.defined() && !grads.lora_a.defined() && !grads.lora_b.defined() && !grads.qat_scale.defined())
    return;
  // G = mask(W') * dy^T x, the straight-through gradient of the merged weight.
  const Tensor merged = merged_lora_weight(weight, lora_a, lora_b, lora_scale, weight.dtype());
  Tensor G = Tensor::empty({out_features(), in_features()}, DType::F32, g.device());
  ops::gemm(G, g, in, true, false);
  qat_weight_backward(G, merged, grads);
  if (grads.weight.defined()) ops::add(grads.weight, grads.weight, G);
  if (grads.lora_b.defined()) ops::gemm(grads.lora_b, G, ops::cast(lora_a, DType::F32), false, true, lora_scale, 1.0f);
  if (grads.lora_a.defined()) ops::gemm(grads.lora_a, ops::cast(lora_b, DType::F32), G, true, false, lora_scale, 1.0f);
}

void Linear::qat_weight_backward(const Tensor& G, const Tensor& w, Linear& grads) const {
  if (!learned_qat()) return fake_quant->mask_gradient(G, w);
  // Scales that do not train here (a test's source without their gradients) still mask.
  auto grad_of = [&](const Tensor& given, const Tensor& param) {
    if (given.defined() || !param.defined()) return given;
    Tensor scratch = Tensor::empty(param.shape(), DType::F32, param.device());
    ops::fill(scratch, 0.0f);
    return scratch;
  };
  fake_quant->backward_scaled(G, grad_of(grads.qat_scale, qat_scale), grad_of(grads.qat_zero, qat_zero), w, qat_scale,
                              qat_zero);
}

}  // namespace tessera
