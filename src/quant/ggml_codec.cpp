#include "quant/ggml_codec.h"

#include <cstring>

#include "core/dtype.h"
#include "core/error.h"
#include "quant/ggml_blocks.h"

namespace tessera::ggml {

namespace {

template <typename Half>
void encode_halves(const float* x, int64_t n, uint8_t* out, Half to_bits) {
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t h = to_bits(x[i]);
    std::memcpy(out + 2 * i, &h, 2);
  }
}

template <typename Half>
void decode_halves(const uint8_t* in, int64_t n, float* out, Half from_bits) {
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, in + 2 * i, 2);
    out[i] = from_bits(h);
  }
}

}  // namespace

std::vector<uint8_t> encode(const float* x, int64_t n, gguf::TensorType type) {
  std::vector<uint8_t> out(gguf::tensor_bytes(type, {n}));
  switch (type) {
    case gguf::TensorType::F32: std::memcpy(out.data(), x, out.size()); break;
    case gguf::TensorType::F16: encode_halves(x, n, out.data(), f32_to_f16_bits); break;
    case gguf::TensorType::BF16: encode_halves(x, n, out.data(), f32_to_bf16_bits); break;
    case gguf::TensorType::Q8_0: quantize_q8_0(x, reinterpret_cast<BlockQ8_0*>(out.data()), n); break;
    case gguf::TensorType::Q4_0: quantize_q4_0(x, reinterpret_cast<BlockQ4_0*>(out.data()), n); break;
  }
  return out;
}

void decode(const void* data, int64_t n, gguf::TensorType type, float* out) {
  const auto* in = static_cast<const uint8_t*>(data);
  switch (type) {
    case gguf::TensorType::F32: std::memcpy(out, in, static_cast<size_t>(n) * 4); break;
    case gguf::TensorType::F16: decode_halves(in, n, out, f16_bits_to_f32); break;
    case gguf::TensorType::BF16: decode_halves(in, n, out, bf16_bits_to_f32); break;
    case gguf::TensorType::Q8_0: dequantize_q8_0(reinterpret_cast<const BlockQ8_0*>(in), out, n); break;
    case gguf::TensorType::Q4_0: dequantize_q4_0(reinterpret_cast<const BlockQ4_0*>(in), out, n); break;
  }
}

}  // namespace tessera::ggml
