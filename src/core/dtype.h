// Element types and host-side conversions for the 16-bit floats.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace tessera {

enum class DType : uint8_t { F32, BF16, F16, I64, I32, I8, U8 };

size_t dtype_size(DType dtype);
std::string_view dtype_name(DType dtype);  // "f32", "bf16", ...
DType parse_dtype(std::string_view name);  // accepts our names and safetensors' ("BF16", "F32", ...)
bool is_floating(DType dtype);

// bf16: the top half of an f32, rounded to nearest even (NaN stays NaN).
inline uint16_t f32_to_bf16_bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

inline float bf16_bits_to_f32(uint16_t half) {
  uint32_t bits = static_cast<uint32_t>(half) << 16;
  float value;
  std::memcpy(&value, &bits, 4);
  return value;
}

// IEEE binary16, round to nearest even, with subnormals, infinities and NaN.
uint16_t f32_to_f16_bits(float value);
float f16_bits_to_f32(uint16_t half);

}  // namespace tessera
