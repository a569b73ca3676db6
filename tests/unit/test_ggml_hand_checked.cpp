// The op table's q8_0 / q4_0 (llama.cpp's grids) against blocks worked out by hand from ggml's
// reference definitions (ggml-quants.c, quantize_row_q8_0_ref / quantize_row_q4_0_ref): an
// independent check of what GGUF export writes and QAT trains against.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "quant/packed.h"

using namespace tessera;

namespace {

constexpr int kBlockSize = 32;

// One 32-value block quantized: the f16 scale's bits and the code bytes of the record.
struct Record {
  uint16_t d;
  std::vector<uint8_t> qs;
};

Record quantize_block(const std::vector<float>& x, QuantScheme scheme) {
  const PackedTensor p = quant::quantize(Tensor::from_vector(x, {1, kBlockSize}, DType::F32), {scheme});
  const auto* bytes = p.parts[0].data_as<uint8_t>();
  Record r;
  std::memcpy(&r.d, bytes, 2);
  r.qs.assign(bytes + 2, bytes + p.parts[0].nbytes());
  return r;
}

std::vector<float> round_trip(const std::vector<float>& x, QuantScheme scheme) {
  const Tensor t = Tensor::from_vector(x, {static_cast<int64_t>(x.size()) / kBlockSize, kBlockSize}, DType::F32);
  return quant::dequantize(quant::quantize(t, {scheme}), DType::F32).to_vector<float>();
}

int8_t q8(const Record& r, int j) { return static_cast<int8_t>(r.qs[j]); }

std::vector<float> block_of_zeros() { return std::vector<float>(kBlockSize, 0.0f); }

}  // namespace

TEST(GgmlQ8_0, HandCheckedBlock) {
  std::vector<float> x(kBlockSize);
  for (int j = 0; j < kBlockSize; ++j) x[j] = static_cast<float>(j - 16) * 0.25f;  // -4 .. 3.75
  const Record b = quantize_block(x, QuantScheme::Q8_0);
  // d = 4 / 127 = 0.0314960...; fp16 2^-5 * (1 + 8 / 1024) = 0.031494140625.
  EXPECT_EQ(b.d, 0x2808);
  EXPECT_EQ(q8(b, 0), -127);  // -4 * 31.75
  EXPECT_EQ(q8(b, 1), -119);  // -3.75 * 31.75 = -119.06
  EXPECT_EQ(q8(b, 16), 0);
  EXPECT_EQ(q8(b, 31), 119);
  const std::vector<float> y = round_trip(x, QuantScheme::Q8_0);
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
  const Record b = quantize_block(x, QuantScheme::Q8_0);
  EXPECT_EQ(b.d, 0x3C00);
  EXPECT_EQ(q8(b, 0), 127);
  EXPECT_EQ(q8(b, 1), 3);  // round-to-even would give 2
  EXPECT_EQ(q8(b, 2), -3);
  EXPECT_EQ(q8(b, 3), 1);
  EXPECT_EQ(q8(b, 4), 0);
}

TEST(GgmlQ8_0, ZeroBlock) {
  std::vector<float> x = block_of_zeros();
  const Record b = quantize_block(x, QuantScheme::Q8_0);
  EXPECT_EQ(b.d, 0x0000);
  for (uint8_t q : b.qs) EXPECT_EQ(q, 0);
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
  const Record b = quantize_block(x, QuantScheme::Q4_0);
  EXPECT_EQ(b.d, 0x3400);  // 0.25
  // Byte j: element j in the low nibble, element j + 16 in the high one (zeros code as 8).
  const uint8_t expected[16] = {0xC9, 0x47, 0x8F, 0x89, 0x88, 0x80, 0x8F, 0x88,
                                0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88};
  for (int j = 0; j < 16; ++j) EXPECT_EQ(b.qs[j], expected[j]) << "byte " << j;
  const std::vector<float> y = round_trip(x, QuantScheme::Q4_0);
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
  const Record b = quantize_block(x, QuantScheme::Q4_0);
  EXPECT_EQ(b.d, 0xB400);
  EXPECT_EQ(b.qs[0], 0x80);
  EXPECT_EQ(b.qs[1], 0x8F);
  const std::vector<float> y = round_trip(x, QuantScheme::Q4_0);
  EXPECT_EQ(y[0], 2.0f);
  EXPECT_EQ(y[1], -1.75f);
}

TEST(GgmlQ4_0, ZeroBlockStoresNegativeZeroScale) {
  std::vector<float> x = block_of_zeros();
  const Record b = quantize_block(x, QuantScheme::Q4_0);
  EXPECT_EQ(b.d, 0x8000);  // 0 / -8 = -0, as ggml writes it
  for (uint8_t q : b.qs) EXPECT_EQ(q, 0x88);
}
