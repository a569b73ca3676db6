#include "core/dtype.h"

#include <cmath>

#include "core/error.h"

namespace tessera {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F32: return 4;
    case DType::BF16: return 2;
    case DType::F16: return 2;
    case DType::I64: return 8;
    case DType::I32: return 4;
    case DType::I8: return 1;
    case DType::U8: return 1;
  }
  fail("unknown dtype {}", static_cast<int>(dtype));
}

std::string_view dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32: return "f32";
    case DType::BF16: return "bf16";
    case DType::F16: return "f16";
    case DType::I64: return "i64";
    case DType::I32: return "i32";
    case DType::I8: return "i8";
    case DType::U8: return "u8";
  }
  return "?";
}

DType parse_dtype(std::string_view name) {
  struct Alias { std::string_view name; DType dtype; };
  static constexpr Alias aliases[] = {
      {"f32", DType::F32}, {"F32", DType::F32}, {"fp32", DType::F32}, {"float32", DType::F32},
      {"bf16", DType::BF16}, {"BF16", DType::BF16}, {"bfloat16", DType::BF16},
      {"f16", DType::F16}, {"F16", DType::F16}, {"fp16", DType::F16}, {"float16", DType::F16},
      {"i64", DType::I64}, {"I64", DType::I64}, {"int64", DType::I64},
      {"i32", DType::I32}, {"I32", DType::I32}, {"int32", DType::I32},
      {"i8", DType::I8}, {"I8", DType::I8}, {"int8", DType::I8},
      {"u8", DType::U8}, {"U8", DType::U8}, {"uint8", DType::U8}};
  for (const auto& a : aliases)
    if (a.name == name) return a.dtype;
  fail("unknown dtype '{}' (expected one of f32, bf16, f16, i64, i32, i8, u8)", name);
}

bool is_floating(DType dtype) {
  return dtype == DType::F32 || dtype == DType::BF16 || dtype == DType::F16;
}

uint16_t f32_to_f16_bits(float value) {
  uint32_t x;
  std::memcpy(&x, &value, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t abs = x & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to inf
  if (abs < 0x38800000u) {  // subnormal or zero in f16: round |value| * 2^24 to an integer
    float scaled = std::fabs(value) * 16777216.0f;  // exact for these magnitudes
    uint32_t q = static_cast<uint32_t>(std::nearbyint(scaled));
    return static_cast<uint16_t>(sign | q);
  }
  uint32_t mant = abs & 0x7fffffu;
  uint32_t exp = (abs >> 23) - 127 + 15;
  uint32_t half = (exp << 10) | (mant >> 13);
  uint32_t rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;  // may carry into the exponent
  return static_cast<uint16_t>(sign | half);
}

float f16_bits_to_f32(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  const uint32_t exp = (half >> 10) & 0x1fu;
  const uint32_t mant = half & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    float v = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -v : v;
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  }
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

}  // namespace tessera
