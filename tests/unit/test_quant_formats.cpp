// Packed layouts (parts, bytes, views over one buffer, errors), the CPU reference of int8, int4,
// q8_0 and q4_0 against their definitions written out plainly here, and gemm_packed.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "error_text.h"
#include "kernels/ops.h"
#include "quant/packed.h"
#include "random_tensors.h"

using namespace tessera;
using namespace tessera::testing_util;

namespace {

// Code i of a row of nibbles, the first in the high half of each byte.
int nibble(const std::vector<uint8_t>& bytes, int64_t i) { return i % 2 == 0 ? bytes[i / 2] >> 4 : bytes[i / 2] & 15; }

}  // namespace

TEST(QuantFormat, PartsOfEachScheme) {
  auto names = [](const QuantSpec& spec, const Shape& shape) {
    std::string out;
    for (const auto& p : packed_part_specs(spec, shape))
      out += std::string(p.name) + ":" + std::string(dtype_name(p.dtype)) + shape_str(p.shape) + " ";
    return out;
  };
  EXPECT_EQ(names({QuantScheme::NF4}, {3, 70}), "codes:u8[105] absmax:u8[4] absmax_scale:f32[1] absmax_offset:f32[1] ");
  EXPECT_EQ(names({QuantScheme::NF4}, {258 * 64}), "codes:u8[8256] absmax:u8[258] absmax_scale:f32[2] absmax_offset:f32[1] ");
  EXPECT_EQ(names({QuantScheme::Int8}, {4, 6}), "codes:i8[4, 6] scales:f32[4] ");
  EXPECT_EQ(names({QuantScheme::Int4, 64}, {4, 128}), "codes:u8[4, 64] scales:f16[4, 2] ");
  EXPECT_EQ(names({QuantScheme::Int4, 32, false}, {2, 64}), "codes:u8[2, 32] scales:f16[2, 2] zeros:u8[2, 2] ");
  EXPECT_EQ(names({QuantScheme::Q8_0}, {2, 64}), "blocks:u8[2, 68] ");
  EXPECT_EQ(names({QuantScheme::Q4_0}, {2, 64}), "blocks:u8[2, 36] ");
  // Each part starts at a multiple of 16: 105 -> 112, 4 -> 16, 4 -> 16, 4 -> 16.
  EXPECT_EQ(packed_bytes({QuantScheme::NF4}, {3, 70}), 160);
  EXPECT_EQ(resolve_quant_spec({QuantScheme::Int8}, {4, 6}).group_size, 6);
  EXPECT_EQ(resolve_quant_spec({QuantScheme::Int4}, {4, 64}).group_size, 32);
}

TEST(QuantFormat, BadSpecsAreClearErrors) {
  EXPECT_EQ(error_of([] { parse_quant_scheme("int3"); }),
            "unknown quantization scheme 'int3' (expected one of nf4, int8, int4, q8_0, q4_0)");
  EXPECT_EQ(parse_quant_scheme("q4_0"), QuantScheme::Q4_0);
  EXPECT_EQ(error_of([] { resolve_quant_spec({QuantScheme::Int4, 48}, {4, 96}); }),
            "int4 groups are 32, 64 or 128 elements, not 48");
  EXPECT_EQ(error_of([] { resolve_quant_spec({QuantScheme::Int4, 64}, {4, 96}); }),
            "int4: rows of 96 elements are not a whole number of groups of 64");
  EXPECT_EQ(error_of([] { resolve_quant_spec({QuantScheme::Q4_0}, {4, 40}); }),
            "q4_0: rows of 40 elements are not a whole number of groups of 32");
  EXPECT_EQ(error_of([] { resolve_quant_spec({QuantScheme::Int8}, {4, 6, 2}); }),
            "int8 quantizes [out, in] matrices, not [4, 6, 2]");
  EXPECT_EQ(error_of([] { resolve_quant_spec({QuantScheme::Int8, 0, false}, {4, 6}); }), "int8 has no asymmetric form");
  EXPECT_EQ(error_of([] { resolve_quant_spec({QuantScheme::NF4, 128}, {4, 64}); }),
            "nf4 quantizes blocks of 64 elements, not 128");
}

TEST(QuantFormat, ViewsOverOneBufferAndCopies) {
  const QuantSpec spec{QuantScheme::Int4, 32, false};
  const Shape shape{3, 64};
  const Tensor bytes = Tensor::empty({packed_bytes(spec, shape)}, DType::U8);
  const PackedTensor w = PackedTensor::view(spec, shape, bytes);
  ASSERT_EQ(w.parts.size(), 3u);
  const char* base = static_cast<const char*>(bytes.data());
  EXPECT_EQ(static_cast<const char*>(w.part("codes").data()), base);
  EXPECT_EQ(static_cast<const char*>(w.part("scales").data()), base + 96);
  EXPECT_EQ(static_cast<const char*>(w.part("zeros").data()), base + 96 + 16);
  EXPECT_EQ(w.nbytes(), 96 + 12 + 6);
  EXPECT_EQ(w.str(), "int4[3, 64] cpu");

  const Tensor x = random_tensor(shape, DType::F32, Device::cpu(), fresh_seed());
  ops::quantize(w, x);
  const PackedTensor copy = w.to(Device::cpu());
  EXPECT_NE(copy.parts[0].data(), w.parts[0].data());
  EXPECT_EQ(host_f32(quant::dequantize(copy, DType::F32)), host_f32(quant::dequantize(w, DType::F32)));

  EXPECT_NE(error_of([&] { PackedTensor::view(spec, shape, bytes.flat_slice(1, bytes.numel() - 1)); }).find("expected u8[128]"),
            std::string::npos);
  EXPECT_NE(error_of([&] { w.part("absmax"); }).find("has no part 'absmax' (its parts: codes, scales, zeros)"),
            std::string::npos);
  PackedTensor wrong = w;
  wrong.parts.pop_back();
  EXPECT_NE(error_of([&] { ops::dequantize(Tensor::empty(shape, DType::F32), wrong); }).find("should have 3 parts, has 2"),
            std::string::npos);
  EXPECT_NE(error_of([&] { ops::quantize(w, Tensor::empty({3, 63}, DType::F32)); }).find("should hold the 192 elements"),
            std::string::npos);
}

TEST(QuantInt8, PerRowSymmetricAsDefined) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const int64_t rows = 5, cols = 37;
  Tensor x = random_tensor({rows, cols}, DType::F32, Device::cpu(), seed);
  std::vector<float> v = host_f32(x);
  for (int64_t c = 0; c < cols; ++c) v[2 * cols + c] = 0.0f;  // an all-zero row: scale 0, codes 0
  x = Tensor::from_vector(v, {rows, cols}, DType::F32);
  const PackedTensor w = quant::quantize(x, {QuantScheme::Int8});
  const std::vector<int8_t> codes = w.part("codes").to_vector<int8_t>();
  const std::vector<float> scales = w.part("scales").to_vector<float>(), deq = host_f32(quant::dequantize(w, DType::F32));
  for (int64_t r = 0; r < rows; ++r) {
    float amax = 0;
    for (int64_t c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(v[r * cols + c]));
    ASSERT_EQ(scales[r], amax / 127.0f) << "row " << r;
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t i = r * cols + c;
      const float want = amax == 0 ? 0.0f : std::nearbyint(v[i] * (1.0f / scales[r]));
      EXPECT_EQ(codes[i], int8_t(want)) << i;
      EXPECT_EQ(deq[i], float(codes[i]) * scales[r]) << i;
      EXPECT_LE(std::fabs(deq[i] - v[i]), scales[r] * 0.5001f) << i;
    }
  }
}

class QuantInt4 : public ::testing::TestWithParam<std::tuple<int, bool>> {};

TEST_P(QuantInt4, GroupsAsDefined) {
  const auto [group, symmetric] = GetParam();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const int64_t rows = 3, cols = 4 * group;
  Tensor x = random_tensor({rows, cols}, DType::BF16, Device::cpu(), seed);
  const std::vector<float> v = host_f32(x);
  const PackedTensor w = quant::quantize(x, {QuantScheme::Int4, group, symmetric});
  const std::vector<uint8_t> codes = w.part("codes").to_vector<uint8_t>();
  const std::vector<uint16_t> scales = w.part("scales").to_vector<uint16_t>();
  const std::vector<uint8_t> zeros = symmetric ? std::vector<uint8_t>() : w.part("zeros").to_vector<uint8_t>();
  const std::vector<float> deq = host_f32(quant::dequantize(w, DType::F32));
  for (int64_t g = 0; g < rows * 4; ++g) {
    float low = v[g * group], high = low;
    for (int i = 0; i < group; ++i) {
      low = std::min(low, v[g * group + i]);
      high = std::max(high, v[g * group + i]);
    }
    const float raw = symmetric ? std::max(-low, high) / 7.5f : (std::max(high, 0.0f) - std::min(low, 0.0f)) / 15.0f;
    const float scale = f16_bits_to_f32(f32_to_f16_bits(raw));
    ASSERT_EQ(f16_bits_to_f32(scales[g]), scale) << "group " << g;
    const float inverse = 1.0f / scale;
    const int zero = symmetric ? 8 : std::clamp(int(-std::nearbyint(std::min(low, 0.0f) * inverse)), 0, 15);
    if (!symmetric) {
      ASSERT_EQ(zeros[g], zero) << "group " << g;
    }
    for (int i = 0; i < group; ++i) {
      const int64_t e = g * group + i;
      const int want = std::clamp(int(std::nearbyint(v[e] * inverse)) + zero, 0, 15);
      ASSERT_EQ(nibble(codes, e), want) << e;
      EXPECT_EQ(deq[e], float(want - zero) * scale) << e;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(GroupsAndForms, QuantInt4,
                         ::testing::Combine(::testing::Values(32, 64, 128), ::testing::Bool()));

TEST(QuantInt4, AsymmetricKeepsZeroExactAndCoversOneSidedGroups) {
  // Non-negative weights: min(min, 0) = 0, so zero point 0 and the full [0, 15] range above it.
  std::vector<float> v(32);
  for (int i = 0; i < 32; ++i) v[i] = 0.25f * i / 31.0f;
  v[5] = 0.0f;
  const Tensor x = Tensor::from_vector(v, {1, 32}, DType::F32);
  const PackedTensor w = quant::quantize(x, {QuantScheme::Int4, 32, false});
  EXPECT_EQ(w.part("zeros").to_vector<uint8_t>()[0], 0);
  const std::vector<float> deq = host_f32(quant::dequantize(w, DType::F32));
  EXPECT_EQ(deq[5], 0.0f);
  EXPECT_NEAR(deq[31], 0.25f, 1e-3);
}

TEST(QuantInt4, GroupsOfSignedZerosGetAPositiveZeroScale) {
  // fmaxf(+0, -0) may be either zero; the scale must be +0 bits on every backend.
  std::vector<float> z(64, 0.0f);
  for (int i = 0; i < 64; i += 3) z[i] = -0.0f;
  const Tensor zeros = Tensor::from_vector(z, {1, 64}, DType::F32);
  for (const bool symmetric : {true, false}) {
    const PackedTensor w = quant::quantize(zeros, {QuantScheme::Int4, 32, symmetric});
    for (const uint16_t bits : w.part("scales").to_vector<uint16_t>()) EXPECT_EQ(bits, 0) << symmetric;
  }
}

namespace {

float record_d(const uint8_t* record) {
  uint16_t bits;
  std::memcpy(&bits, record, 2);
  return f16_bits_to_f32(bits);
}

}  // namespace

TEST(QuantGgml, Q8_0AsLlamaCppDefinesIt) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const int64_t rows = 3, cols = 96;
  std::vector<float> v = host_f32(random_tensor({rows, cols}, DType::F32, Device::cpu(), seed));
  for (int j = 0; j < 32; ++j) v[32 + j] = 0.0f;  // an all-zero block: d 0, codes 0
  v[70] = 127.0f * 0.5f;  // in a block whose amax is this: x / d = 127 exactly
  const PackedTensor w = quant::quantize(Tensor::from_vector(v, {rows, cols}, DType::F32), {QuantScheme::Q8_0});
  const std::vector<uint8_t> records = w.part("blocks").to_vector<uint8_t>();
  const std::vector<float> deq = host_f32(quant::dequantize(w, DType::F32));
  for (int64_t b = 0; b < rows * cols / 32; ++b) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(v[b * 32 + j]));
    const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
    const uint8_t* record = records.data() + b * 34;
    ASSERT_EQ(record_d(record), f16_bits_to_f32(f32_to_f16_bits(d))) << "block " << b;
    for (int j = 0; j < 32; ++j) {
      const int8_t q = int8_t(std::round(v[b * 32 + j] * id));
      ASSERT_EQ(int8_t(record[2 + j]), q) << "block " << b << " element " << j;
      EXPECT_EQ(deq[b * 32 + j], float(q) * record_d(record));
    }
  }
}

TEST(QuantGgml, Q4_0AsLlamaCppDefinesIt) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const int64_t rows = 2, cols = 128;
  std::vector<float> v = host_f32(random_tensor({rows, cols}, DType::F32, Device::cpu(), seed));
  v[3] = -9.0f;  // block 0: equal magnitudes, the first (negative) one sets d = -9 / -8
  v[10] = 9.0f;
  for (int j = 0; j < 32; ++j) v[64 + j] = -0.0f;  // an all-zero block
  const PackedTensor w = quant::quantize(Tensor::from_vector(v, {rows, cols}, DType::F32), {QuantScheme::Q4_0});
  const std::vector<uint8_t> records = w.part("blocks").to_vector<uint8_t>();
  const std::vector<float> deq = host_f32(quant::dequantize(w, DType::F32));
  EXPECT_EQ(record_d(records.data()), 1.125f);
  for (int64_t b = 0; b < rows * cols / 32; ++b) {
    float amax = 0, m = 0;
    for (int j = 0; j < 32; ++j)
      if (amax < std::fabs(v[b * 32 + j])) {
        amax = std::fabs(v[b * 32 + j]);
        m = v[b * 32 + j];
      }
    const float d = m / -8.0f, id = d != 0 ? 1.0f / d : 0.0f;
    const uint8_t* record = records.data() + b * 18;
    ASSERT_EQ(f32_to_f16_bits(d), uint16_t(record[0] | record[1] << 8)) << "block " << b;
    for (int j = 0; j < 32; ++j) {
      const int q = std::min(15, int(v[b * 32 + j] * id + 8.5f));
      const int stored = j < 16 ? record[2 + j] & 15 : record[2 + j - 16] >> 4;
      ASSERT_EQ(stored, q) << "block " << b << " element " << j;
      EXPECT_EQ(deq[b * 32 + j], float(q - 8) * record_d(record));
    }
  }
}

class QuantGemm : public ::testing::TestWithParam<std::tuple<QuantScheme, bool>> {};

// The CPU reference of a projection with a packed weight is exactly dequantize + gemm.
TEST_P(QuantGemm, IsDequantizeThenGemm) {
  const auto [scheme, trans_b] = GetParam();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << quant_scheme_name(scheme) << " trans_b " << trans_b << " seed " << seed);
  const int64_t out = 24, in = 64, tokens = 5;
  const PackedTensor w = quant::quantize(random_tensor({out, in}, DType::F32, Device::cpu(), seed, 0.05f), {scheme});
  const Tensor x = random_tensor({tokens, trans_b ? in : out}, DType::F32, Device::cpu(), seed + 1);
  const Tensor bias = random_tensor({trans_b ? out : in}, DType::F32, Device::cpu(), seed + 2);
  Tensor got = random_tensor({tokens, trans_b ? out : in}, DType::F32, Device::cpu(), seed + 3);
  Tensor want = got.clone();
  ops::gemm_packed(got, x, w, trans_b, 0.5f, 0.25f, bias);
  ops::gemm(want, x, quant::dequantize(w, DType::F32), false, trans_b, 0.5f, 0.25f, bias);
  EXPECT_EQ(host_f32(got), host_f32(want));
}

INSTANTIATE_TEST_SUITE_P(Schemes, QuantGemm,
                         ::testing::Combine(::testing::Values(QuantScheme::NF4, QuantScheme::Int8, QuantScheme::Int4,
                                                              QuantScheme::Q8_0, QuantScheme::Q4_0),
                                            ::testing::Bool()));
