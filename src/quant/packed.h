// A frozen quantized weight: kernels/quant_format.h defines it (scheme and parameters, the
// logical shape, the parts as plain tensors, one byte buffer holding them all) and the op table
// quantizes and dequantizes it (ops::quantize, ops::dequantize). These make and undo one.
#pragma once

#include "kernels/quant_format.h"

namespace tessera::quant {

// w (floating) quantized under spec, on w's device.
PackedTensor quantize(const Tensor& w, const QuantSpec& spec);
// The weights w holds, as a new tensor of w's logical shape and `dtype`, on w's device.
Tensor dequantize(const PackedTensor& w, DType dtype);

}  // namespace tessera::quant
