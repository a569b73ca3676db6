#include "quant/packed.h"

#include "kernels/ops.h"

namespace tessera::quant {

PackedTensor quantize(const Tensor& w, const QuantSpec& spec) {
  PackedTensor packed = PackedTensor::empty(spec, w.shape(), w.device());
  ops::quantize(packed, w);
  return packed;
}

Tensor dequantize(const PackedTensor& w, DType dtype) {
  Tensor out = Tensor::empty(w.shape, dtype, w.device());
  ops::dequantize(out, w);
  return out;
}

}  // namespace tessera::quant
