// GGUF tensor bytes to and from Tessera's tensors: f32 as is, f16 and bf16 through ops::cast
// (round to nearest even, as ggml converts), Q8_0 / Q4_0 through the op table's q8_0 / q4_0
// schemes, whose records are llama.cpp's block_q8_0 / block_q4_0 byte for byte. Rows are the last
// dimension (a [out, in] weight quantizes in blocks of 32 along `in`).
#pragma once

#include "core/tensor.h"
#include "io/gguf_format.h"
#include "kernels/quant_format.h"

namespace tessera::ggml {

// The bytes of a host tensor (floating) as a GGUF tensor of `type`: u8 [tensor_bytes].
Tensor encode(const Tensor& x, gguf::TensorType type);
// A GGUF tensor's bytes (u8, host) as f32 values of `shape`, in a new tensor.
Tensor decode(const Tensor& bytes, const Shape& shape, gguf::TensorType type);
// Q8_0 / Q4_0 bytes as the packed weight the quantized kernels read, viewing `bytes` (no copy).
PackedTensor packed_view(const Tensor& bytes, const Shape& shape, gguf::TensorType type);

}  // namespace tessera::ggml
