// Q8_0 / Q4_0 against vectors worked out by hand from ggml's reference definitions.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "quant/ggml_blocks.h"

using namespace tessera;
using namespace tessera::ggml;

namespace {

std::vector<float> block_of_zeros() { return std::vector<float>(kBlockSize, 0.0f); }

}  // namespace

TEST(GgmlQ8_0, HandCheckedBlock) {
  std::vector<float> x(kBlockSize);
  for (int j = 0; j < kBlockSize; ++j) x[j] = static_cast<float>(j - 16) * 0.25f;  // -4 .. 3.75
  BlockQ8_0 b{};
  quantize_q8_0(x.data(), &b, kBlockSize);
  // d = 4 / 127 = 0.0314960...; fp16 2^-5 * (1 + 8 / 1024) = 0.031494140625.
  EXPECT_EQ(b.d, 0x2808);
  EXPECT_EQ(b.qs[0], -127);  // -4 * 31.75
  EXPECT_EQ(b.qs[1], -119);  // -3.75 * 31.75 = -119.06
  EXPECT_EQ(b.qs[16], 0);
  EXPECT_EQ(b.qs[31], 119);
  std::vector<float> y(kBlockSize);
  dequantize_q8_0(&b, y.data(), kBlockSize);
  EXPECT_EQ(y[0], -127 * 0.031494140625f);  // the stored fp16 scale, not 4 / 127
  EXPECT_EQ(y[31], 119 * 0.031494140625f);
}

TEST(GgmlQ8_0, RoundsHalfAwayFromZero) {
  std::vector<float> x = block_of_zeros();
  x[0] = 127.0f;  // d = 1 exactly
  x[1] = 2.5f;
  x[2] = -2.5f;
  x[3] = 0.5f;
  x[4] = -0.49f;
  BlockQ8_0 b{};
  quantize_q8_0(x.data(), &b, kBlockSize);
  EXPECT_EQ(b.d, 0x3C00);
  EXPECT_EQ(b.qs[0], 127);
  EXPECT_EQ(b.qs[1], 3);  // round-to-even would give 2
  EXPECT_EQ(b.qs[2], -3);
  EXPECT_EQ(b.qs[3], 1);
  EXPECT_EQ(b.qs[4], 0);
}

TEST(GgmlQ8_0, ZeroBlock) {
  std::vector<float> x = block_of_zeros();
  BlockQ8_0 b{};
  b.qs[5] = 9;
  quantize_q8_0(x.data(), &b, kBlockSize);
  EXPECT_EQ(b.d, 0x0000);
  for (int8_t q : b.qs) EXPECT_EQ(q, 0);
}

TEST(GgmlQ4_0, HandCheckedBlockWithNegativeExtreme) {
  std::vector<float> x = block_of_zeros();
  x[0] = 0.3f;      // 0.3 * 4 + 8.5 = 9.7   -> 9
  x[1] = -0.3f;     // 7.3                   -> 7
  x[2] = 1.9f;      // 16.1                  -> 16, clamped to 15
  x[3] = 0.125f;    // 9.0                   -> 9
  x[4] = -0.125f;   // 8.0                   -> 8
  x[5] = -2.0f;     // the extreme: d = -2 / -8 = 0.25, code 0.5 -> 0
  x[6] = 2.0f;      // as large, but later: 16.5 -> 16, clamped to 15
  x[7] = 0.0625f;   // 8.75                  -> 8
  x[16] = 1.0f;     // 12.5                  -> 12
  x[17] = -1.0f;    // 4.5                   -> 4
  BlockQ4_0 b{};
  quantize_q4_0(x.data(), &b, kBlockSize);
  EXPECT_EQ(b.d, 0x3400);  // 0.25
  // Byte j: element j in the low nibble, element j + 16 in the high one (zeros code as 8).
  const uint8_t expected[16] = {0xC9, 0x47, 0x8F, 0x89, 0x88, 0x80, 0x8F, 0x88,
                                0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88};
  for (int j = 0; j < 16; ++j) EXPECT_EQ(b.qs[j], expected[j]) << "byte " << j;
  std::vector<float> y(kBlockSize);
  dequantize_q4_0(&b, y.data(), kBlockSize);
  EXPECT_EQ(y[0], 0.25f);
  EXPECT_EQ(y[2], 1.75f);
  EXPECT_EQ(y[5], -2.0f);
  EXPECT_EQ(y[6], 1.75f);
  EXPECT_EQ(y[16], 1.0f);
  EXPECT_EQ(y[17], -1.0f);
  EXPECT_EQ(y[31], 0.0f);
}

TEST(GgmlQ4_0, PositiveExtremeGivesNegativeScale) {
  std::vector<float> x = block_of_zeros();
  x[0] = 2.0f;   // first of largest magnitude: d = 2 / -8 = -0.25, code 0
  x[1] = -2.0f;  // 16.5 -> 15, which decodes to 7 * -0.25
  BlockQ4_0 b{};
  quantize_q4_0(x.data(), &b, kBlockSize);
  EXPECT_EQ(b.d, 0xB400);
  EXPECT_EQ(b.qs[0], 0x80);
  EXPECT_EQ(b.qs[1], 0x8F);
  std::vector<float> y(kBlockSize);
  dequantize_q4_0(&b, y.data(), kBlockSize);
  EXPECT_EQ(y[0], 2.0f);
  EXPECT_EQ(y[1], -1.75f);
}

TEST(GgmlQ4_0, ZeroBlockStoresNegativeZeroScale) {
  std::vector<float> x = block_of_zeros();
  BlockQ4_0 b{};
  quantize_q4_0(x.data(), &b, kBlockSize);
  EXPECT_EQ(b.d, 0x8000);  // 0 / -8 = -0, as ggml writes it
  for (uint8_t q : b.qs) EXPECT_EQ(q, 0x88);
}

TEST(GgmlBlocks, RandomRowsRoundTripWithinHalfAStep) {
  const int64_t n = 64 * kBlockSize;
  std::mt19937 gen(7);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<float> x(n), y(n);
  for (float& v : x) v = normal(gen);

  std::vector<BlockQ8_0> q8(n / kBlockSize);
  quantize_q8_0(x.data(), q8.data(), n);
  dequantize_q8_0(q8.data(), y.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    const float d = f16_bits_to_f32(q8[i / kBlockSize].d);
    ASSERT_GT(d, 0.0f);
    // Half a step, plus the fp16 rounding of d (2^-11 relative) over at most 127 steps.
    ASSERT_LE(std::fabs(x[i] - y[i]), 0.5f * d + 127.0f * d / 2048.0f) << i;
  }

  std::vector<BlockQ4_0> q4(n / kBlockSize);
  quantize_q4_0(x.data(), q4.data(), n);
  dequantize_q4_0(q4.data(), y.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    const float d = std::fabs(f16_bits_to_f32(q4[i / kBlockSize].d));
    ASSERT_GT(d, 0.0f);
    // The side opposite the extreme clamps at 7 steps instead of 8: up to a whole step there.
    ASSERT_LE(std::fabs(x[i] - y[i]), d + 8.0f * d / 2048.0f) << i;
  }
}

TEST(GgmlBlocks, RowsMustBeWholeBlocks) {
  std::vector<float> x(40, 1.0f);
  std::vector<BlockQ8_0> q8(2);
  std::vector<BlockQ4_0> q4(2);
  EXPECT_THROW(quantize_q8_0(x.data(), q8.data(), 40), Error);
  EXPECT_THROW(quantize_q4_0(x.data(), q4.data(), 40), Error);
  EXPECT_THROW(dequantize_q4_0(q4.data(), x.data(), 33), Error);
}
