#include "quant/ggml_blocks.h"

#include <algorithm>
#include <cmath>

#include "core/dtype.h"
#include "core/error.h"

namespace tessera::ggml {

namespace {

int64_t block_count(int64_t n) {
  TS_CHECK(n >= 0 && n % kBlockSize == 0, "ggml blocks: {} values are not a whole number of {}-value blocks", n,
           kBlockSize);
  return n / kBlockSize;
}

// ggml multiplies by the reciprocal rather than dividing; the two differ in the last bit.
float reciprocal_or_zero(float d) { return d != 0.0f ? 1.0f / d : 0.0f; }

void quantize_block(const float* x, BlockQ8_0& y) {
  float amax = 0.0f;
  for (int64_t j = 0; j < kBlockSize; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = reciprocal_or_zero(d);
  y.d = f32_to_f16_bits(d);
  for (int64_t j = 0; j < kBlockSize; ++j) y.qs[j] = static_cast<int8_t>(std::round(x[j] * id));
}

void quantize_block(const float* x, BlockQ4_0& y) {
  float amax = 0.0f, max = 0.0f;  // the first element of largest magnitude, with its sign
  for (int64_t j = 0; j < kBlockSize; ++j)
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  const float d = max / -8.0f;
  const float id = reciprocal_or_zero(d);
  y.d = f32_to_f16_bits(d);
  // x * id lies in [-8, 8] (the extreme element maps to -8), so the code before the clamp is in [0, 16].
  auto code = [id](float v) { return static_cast<uint8_t>(std::min(15, static_cast<int>(v * id + 8.5f))); };
  for (int64_t j = 0; j < kBlockSize / 2; ++j)
    y.qs[j] = static_cast<uint8_t>(code(x[j]) | (code(x[j + kBlockSize / 2]) << 4));
}

void dequantize_block(const BlockQ8_0& x, float* y) {
  const float d = f16_bits_to_f32(x.d);
  for (int64_t j = 0; j < kBlockSize; ++j) y[j] = static_cast<float>(x.qs[j]) * d;
}

void dequantize_block(const BlockQ4_0& x, float* y) {
  const float d = f16_bits_to_f32(x.d);
  for (int64_t j = 0; j < kBlockSize / 2; ++j) {
    y[j] = static_cast<float>((x.qs[j] & 0x0F) - 8) * d;
    y[j + kBlockSize / 2] = static_cast<float>((x.qs[j] >> 4) - 8) * d;
  }
}

template <typename Block>
void quantize_blocks(const float* x, Block* y, int64_t n) {
  const int64_t blocks = block_count(n);
#pragma omp parallel for schedule(static) if (blocks > 4096)
  for (int64_t b = 0; b < blocks; ++b) quantize_block(x + b * kBlockSize, y[b]);
}

template <typename Block>
void dequantize_blocks(const Block* x, float* y, int64_t n) {
  const int64_t blocks = block_count(n);
#pragma omp parallel for schedule(static) if (blocks > 4096)
  for (int64_t b = 0; b < blocks; ++b) dequantize_block(x[b], y + b * kBlockSize);
}

}  // namespace

void quantize_q8_0(const float* x, BlockQ8_0* y, int64_t n) { quantize_blocks(x, y, n); }
void dequantize_q8_0(const BlockQ8_0* x, float* y, int64_t n) { dequantize_blocks(x, y, n); }
void quantize_q4_0(const float* x, BlockQ4_0* y, int64_t n) { quantize_blocks(x, y, n); }
void dequantize_q4_0(const BlockQ4_0* x, float* y, int64_t n) { dequantize_blocks(x, y, n); }

}  // namespace tessera::ggml
