// Floats to the bytes of a GGUF tensor of any type Tessera writes, and back: f32 as is, f16 and
// bf16 rounded to nearest even (as ggml converts), Q8_0 / Q4_0 through ggml_blocks.
#pragma once

#include <cstdint>
#include <vector>

#include "io/gguf_format.h"

namespace tessera::ggml {

// n values (for Q8_0 / Q4_0 a multiple of 32: rows of whole blocks) as `type`.
std::vector<uint8_t> encode(const float* x, int64_t n, gguf::TensorType type);
// The n values of `data`, which holds gguf::tensor_bytes of them.
void decode(const void* data, int64_t n, gguf::TensorType type, float* out);

}  // namespace tessera::ggml
