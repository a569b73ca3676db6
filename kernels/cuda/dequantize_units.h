// kernels/cuda/dequantize_units.cu: dequantize a matrix in units of 16 weights, 4 a thread.
#pragma once

#include "core/tensor.h"
#include "kernels/quant_format.h"

namespace tessera::cuda {

// out = the weights of w, as ops::dequantize defines them, bit for bit; false (nothing done)
// where w is no matrix of whole units or out is not aligned to 8 elements.
bool dequantize_units(const Tensor& out, const PackedTensor& w);

}  // namespace tessera::cuda
