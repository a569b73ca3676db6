// One projection of a layer, y = x W^T + b + s (drop(x) A^T) B^T, and the place where everything
// that changes a projection plugs in: a frozen base (no weight gradient), a LoRA adapter (A, B,
// scale s), a fake-quantizer for quantization-aware training, a packed quantized base. The layer
// code is written once against it; training, inference and every variant call the same forward.
//
// A Linear holds views. The same struct holds a projection's gradients (f32): a tensor with no
// gradient buffer is undefined there, and backward skips it (a frozen weight costs no dW GEMM;
// its input gradient still flows).
//
// QAT with LoRA: what is fake-quantized is the merged weight W' = W + s B A (so the merged export
// is what was trained): y = x Q(W')^T + b, with no separate adapter branch. Backward forms the
// straight-through gradient of W', G = mask(W') * dy^T x (one dW-sized GEMM), and passes it on:
// dW += G (when W trains), dB += s G A^T, dA += s B^T G; dx = dy Q(W'). LoRA dropout has no input
// of its own to act on there and is refused.
//
// QAT with learned scales (qat_scale, qat_zero defined): Q uses them (FakeQuantizer::apply_scaled),
// and backward forms this pass's G = dy^T x on its own, hands it to backward_scaled (which masks
// it and adds the scales' gradients) and then adds it to dW.
#pragma once

#include <cstdint>
#include <memory>

#include "core/tensor.h"
#include "kernels/quant_format.h"  // PackedTensor: a frozen quantized weight (scheme, shape, parts)

namespace tessera {

// Quantization-aware training: the weight the forward (and the input gradient) sees in place of
// W, e.g. quantize-dequantize; its gradient passes straight through to W (src/quant fills it).
class FakeQuantizer {
 public:
  virtual ~FakeQuantizer() = default;
  // A tensor of weight's shape and dtype on its device.
  virtual Tensor apply(const Tensor& weight) const = 0;
  // The input the products see (activation fake quantization; its gradient passes straight
  // through). Identity by default.
  virtual Tensor input(const Tensor& x) const { return x; }
  // The straight-through estimator's mask on the weight gradient (f32, accumulated: applying it
  // again is harmless): zero where weight's code is clamped. None by default.
  virtual void mask_gradient(const Tensor& grad, const Tensor& weight) const {
    (void)grad;
    (void)weight;
  }
  // Learned scales (Linear::qat_scale): the weight under each group's given scale (and zero point)
  // in place of apply(); and its backward from grad = dL/dW' of one pass (f32, masked in place),
  // adding the scales' (and zero points') gradients into grad_scale (and grad_zero).
  virtual Tensor apply_scaled(const Tensor& weight, const Tensor& scale, const Tensor& zero) const;
  virtual void backward_scaled(const Tensor& grad, const Tensor& grad_scale, const Tensor& grad_zero,
                               const Tensor& weight, const Tensor& scale, const Tensor& zero) const;
};

// Which random numbers the LoRA branch's dropout uses: input element (row, col) is kept when
// Philox(key, first + row * in_features + col) >= p. `first` counts from the batch's first
// token in the whole global batch, so the masks do not depend on how it is split over ranks.
struct LoraDropout {
  float p = 0.0f;  // 0: off (evaluation, inference)
  uint64_t key = 0, first = 0;
};

// How a projection with a packed base multiplies: dequantize the base into a workspace of the
// activations' dtype (bf16 on GPUs, f32 on the CPU) and run the dense gemm, or hand the packed
// base to ops::gemm_packed (the slot for a fused kernel). Chosen by measurement (lora.packed_matmul).
enum class PackedMatmul : uint8_t { dequantize, gemm_packed };

struct Linear {
  Tensor weight;                                 // [out, in]; undefined when `packed` holds the base
  std::shared_ptr<const PackedTensor> packed;    // a frozen quantized base
  Tensor bias;                                   // [out] or undefined
  Tensor lora_a, lora_b;                         // [r, in], [out, r]: both or neither
  float lora_scale = 1.0f;                       // s: alpha / r (rsLoRA: alpha / sqrt(r))
  std::shared_ptr<const FakeQuantizer> fake_quant;
  // QAT's learned scales (quant.qat.learnable_scales), used while fake_quant is set: one per group
  // of the weight's rows [out, in / group], and asymmetric int4's zero points; trainable.
  Tensor qat_scale, qat_zero;
  PackedMatmul packed_matmul = PackedMatmul::dequantize;

  bool has_lora() const { return lora_a.defined(); }
  bool merged_qat() const { return fake_quant && has_lora(); }  // QAT with LoRA (see above)
  bool learned_qat() const { return fake_quant && qat_scale.defined(); }
  int64_t out_features() const;
  int64_t in_features() const;

  // y [T, out] in x's dtype from x [T, in]. With `lora_xa`, keeps drop(x) A^T [T, r] there for
  // backward (LoRA only).
  Tensor forward(const Tensor& x, Tensor* lora_xa = nullptr, const LoraDropout& dropout = {}) const;

  // From dy [T, out] and the forward's x and lora_xa: dx (written, or added to with
  // accumulate_dx; undefined to skip) and, into each tensor `grads` defines, its gradient (+=).
  void backward(const Tensor& dy, const Tensor& x, const Tensor& lora_xa, Linear& grads, const Tensor& dx,
                bool accumulate_dx, const LoraDropout& dropout = {}) const;

 private:
  Tensor base_weight(DType dtype) const;  // W as the products use it (fake-quantized under QAT,
                                          // dequantized to `dtype` when packed)
  // c = alpha * a W^T + beta * c (+ bias) with trans_w, else alpha * a W + beta * c: the base's
  // products, dense or packed.
  void base_gemm(const Tensor& c, const Tensor& a, bool trans_w, float alpha, float beta, const Tensor& bias) const;
  Tensor input_rows(const Tensor& x) const;  // x as the products use it, [T, in]
  void merged_qat_backward(const Tensor& g, const Tensor& in, Linear& grads) const;
  // The straight-through backward of G = dL/dW' (f32, the fake-quantized weight's gradient of this
  // pass, `w` what was fake-quantized): masked in place, the learned scales' gradients into grads.
  void qat_weight_backward(const Tensor& G, const Tensor& w, Linear& grads) const;
};

// The merged weight W + scale * B A, computed in f32 and returned in `dtype`: w [out, in],
// a [r, in], b [out, r], any floating dtypes, on one device. What a merged export writes and what
// QAT with LoRA fake-quantizes, by one computation.
Tensor merged_lora_weight(const Tensor& w, const Tensor& a, const Tensor& b, float scale, DType dtype);

}  // namespace tessera
