// Quantization-aware training's ops: fake quantization is dequantize(quantize(w)) bit for bit, the
// straight-through mask zeroes exactly the clamped codes, and int8 activations follow their
// definition (written out plainly here).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "kernels/ops.h"
#include "quant/packed.h"
#include "random_tensors.h"

using namespace tessera;
using namespace tessera::testing_util;

class FakeQuantize : public ::testing::TestWithParam<QuantSpec> {};

TEST_P(FakeQuantize, IsDequantizeOfQuantizeBitForBit) {
  const QuantSpec spec = GetParam();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << quant_scheme_name(spec.scheme) << " seed " << seed);
  const Tensor w = random_tensor({6, 256}, DType::BF16, Device::cpu(), seed, 0.05f);
  const Tensor fq = Tensor::empty(w.shape(), DType::BF16);
  ops::fake_quantize(fq, w, spec);
  const Tensor want = quant::dequantize(quant::quantize(w, spec), DType::BF16);
  EXPECT_EQ(fq.to_vector<uint16_t>(), want.to_vector<uint16_t>());
}

INSTANTIATE_TEST_SUITE_P(Schemes, FakeQuantize,
                         ::testing::Values(QuantSpec{QuantScheme::Int8}, QuantSpec{QuantScheme::Int4, 32},
                                           QuantSpec{QuantScheme::Int4, 128, false}, QuantSpec{QuantScheme::Q8_0},
                                           QuantSpec{QuantScheme::Q4_0}));

TEST(FakeQuantizeMask, Int4ZeroesTheClampedCodesOnly) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  for (bool symmetric : {true, false}) {
    std::vector<float> v = host_f32(random_tensor({2, 64}, DType::F32, Device::cpu(), seed));
    v[5] = 4.0f;  // symmetric: the absmax 4 is 7.5 scales, which rounds to code 8 + 8: clamped
    const Tensor w = Tensor::from_vector(v, {2, 64}, DType::F32);
    const Tensor grad = random_tensor({2, 64}, DType::F32, Device::cpu(), seed + 1);
    const std::vector<float> before = host_f32(grad);
    ops::fake_quantize_mask(grad, w, {QuantScheme::Int4, 32, symmetric});
    const std::vector<float> after = host_f32(grad);
    int masked = 0;
    for (int64_t g = 0; g < 4; ++g) {
      float low = v[g * 32], high = low;
      for (int i = 0; i < 32; ++i) low = std::min(low, v[g * 32 + i]), high = std::max(high, v[g * 32 + i]);
      const float raw = symmetric ? std::max(-low, high) / 7.5f : (std::max(high, 0.0f) - std::min(low, 0.0f)) / 15.0f;
      const float inverse = 1.0f / f16_bits_to_f32(f32_to_f16_bits(raw));
      const float zero = symmetric ? 8.0f : std::clamp(-std::nearbyint(std::min(low, 0.0f) * inverse), 0.0f, 15.0f);
      for (int i = 0; i < 32; ++i) {
        const int64_t e = g * 32 + i;
        const float u = std::nearbyint(v[e] * inverse) + zero;
        const bool clamped = u < 0 || u > 15;
        masked += clamped;
        EXPECT_EQ(after[e], clamped ? 0.0f : before[e]) << "symmetric " << symmetric << " element " << e;
      }
    }
    if (symmetric) {
      EXPECT_GE(masked, 1);
    }
  }
}

TEST(FakeQuantizeMask, Q4_0ZeroesCodesAbove15AndLeavesOthersAlone) {
  // Normal(0, 0.5): the -3 set below is its block's extreme (a random |v| > 3 would take its place).
  std::vector<float> v = host_f32(random_tensor({1, 64}, DType::F32, Device::cpu(), fresh_seed(), 0.5f));
  v[2] = -3.0f, v[9] = 3.0f;  // d = -3 / -8: element 9 maps to +8, 16.5 before the truncation: clamped
  const Tensor w = Tensor::from_vector(v, {1, 64}, DType::F32);
  const Tensor grad = Tensor::from_vector(std::vector<float>(64, 1.0f), {1, 64}, DType::F32);
  ops::fake_quantize_mask(grad, w, {QuantScheme::Q4_0});
  const std::vector<float> g = host_f32(grad);
  EXPECT_EQ(g[9], 0.0f);
  EXPECT_EQ(g[2], 1.0f);
  // Int8 never clamps: the mask leaves the gradient alone.
  const Tensor ones = Tensor::from_vector(std::vector<float>(64, 1.0f), {1, 64}, DType::F32);
  ops::fake_quantize_mask(ones, w, {QuantScheme::Int8});
  EXPECT_EQ(host_f32(ones), std::vector<float>(64, 1.0f));
}

TEST(FakeQuantizeActivations, Int8PerTokenAsymmetricAsDefined) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const int64_t rows = 4, cols = 50;
  std::vector<float> v = host_f32(random_tensor({rows, cols}, DType::F32, Device::cpu(), seed));
  for (int64_t c = 0; c < cols; ++c) v[cols + c] = std::fabs(v[cols + c]);  // a row of non-negative values
  v[3] = 0.0f;
  const Tensor x = Tensor::from_vector(v, {rows, cols}, DType::F32);
  const Tensor out = Tensor::empty(x.shape(), DType::F32);
  ops::fake_quantize_rows_int8(out, x);
  const std::vector<float> got = host_f32(out);
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = v.data() + r * cols;
    const float low = std::min(0.0f, *std::min_element(row, row + cols));
    const float high = std::max(0.0f, *std::max_element(row, row + cols));
    const float scale = (high - low) / 255.0f, inverse = 1.0f / scale;
    const int zero = std::clamp(int(-128.0f - std::nearbyint(low * inverse)), -128, 127);
    for (int64_t c = 0; c < cols; ++c) {
      const int q = std::clamp(int(std::nearbyint(row[c] * inverse)) + zero, -128, 127);
      EXPECT_EQ(got[r * cols + c], float(q - zero) * scale) << r << ", " << c;
      EXPECT_LE(std::fabs(got[r * cols + c] - row[c]), scale * 0.5001f);
    }
  }
  EXPECT_EQ(got[3], 0.0f) << "zero is exact";
}
