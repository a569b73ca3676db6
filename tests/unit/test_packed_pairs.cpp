// kernels/packed_pairs.h on the host (the tensor-core gemv's unpacking): for every unit of every
// scheme but nf4, in bf16 and f16, the activation that meets each weight through the pairs is its
// own. With a one-hot activation at element e of the unit, the sum over the 8 pairs of their two
// products is the weight at e exactly: (code - zero) * scale rounded to the 16-bit type (bf16
// nibbles: times the scale rounded to bf16 first, as the pair product does), within 1% of the
// dequantized weight.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/packed_pairs.h"
#include "quant/packed.h"
#include "random_tensors.h"

using namespace tessera;
using namespace tessera::testing_util;
namespace pu = tessera::packed_units;
namespace pp = tessera::packed_pairs;

namespace {

struct Case {
  QuantSpec spec;
  Shape shape;
};

template <bool kBf16>
float round16(float v) {
  return kBf16 ? bf16_bits_to_f32(f32_to_bf16_bits(v)) : f16_bits_to_f32(f32_to_f16_bits(v));
}

template <bool kBf16>
float low(uint32_t pair) {
  return pp::unpack<kBf16>(uint16_t(pair));
}
template <bool kBf16>
float high(uint32_t pair) {
  return pp::unpack<kBf16>(uint16_t(pair >> 16));
}

template <bool kBf16>
void check_scheme(const Case& c, uint64_t seed) {
  SCOPED_TRACE(kBf16 ? "bf16" : "f16");
  const Tensor x = random_tensor(c.shape, DType::F32, Device::cpu(), seed, 0.03f);
  const PackedTensor w = quant::quantize(x, c.spec);
  const std::vector<float> dequantized = quant::dequantize(w, DType::F32).to_vector<float>();
  const int64_t rows = c.shape[0], cols = c.shape[1];
  const uint32_t one = kBf16 ? 0x3F80u : 0x3C00u;
  const bool nibbles = c.spec.scheme == QuantScheme::Int4 || c.spec.scheme == QuantScheme::Q4_0;
  int64_t checked = 0;
  pu::with_reader(w, nullptr, [&](const auto& reader) {
    using Reader = std::decay_t<decltype(reader)>;
    if constexpr (pp::has_pairs<Reader>) {
      const auto pairs = pp::pairs_of(reader);
      using Pairs = std::decay_t<decltype(pairs)>;
      for (int64_t row = 0; row < rows; ++row)
        for (int u = 0; u < cols / pu::kUnit; ++u) {
          typename Pairs::Raw raw;
          pairs.load(row, u, raw);
          uint32_t a[pp::kPairs];
          Pairs::template pairs<kBf16>(raw, a);
          pu::Unit unit;
          reader.load(row, u, unit);
          for (int e = 0; e < pu::kUnit; ++e) {
            uint32_t xr[pp::kPairs] = {}, b[pp::kPairs];
            xr[e / 2] = one << (16 * (e % 2));  // elements 0-7: run first(u), 8-15: run second(u)
            Pairs::x_pairs(b, xr);
            float got = 0.0f;
            for (int p = 0; p < pp::kPairs; ++p)
              got += low<kBf16>(a[p]) * low<kBf16>(b[p]) + high<kBf16>(a[p]) * high<kBf16>(b[p]);
            const float scale = nibbles && kBf16 ? round16<kBf16>(unit.scale) : unit.scale;
            const float want = round16<kBf16>((unit.code[e] - unit.zero) * scale);
            const int col = e < 8 ? Reader::first(u) + e : Reader::second(u) + e - 8;
            ASSERT_EQ(got, want) << "row " << row << " unit " << u << " element " << e;
            ASSERT_LE(std::abs(got - dequantized[row * cols + col]), 0.01f * std::abs(dequantized[row * cols + col]))
                << "row " << row << " column " << col;
            ++checked;
          }
        }
    }
  });
  EXPECT_EQ(checked, rows * cols);
}

class PackedPairs : public ::testing::TestWithParam<Case> {};

TEST_P(PackedPairs, EachWeightMeetsItsActivation) {
  const Case c = GetParam();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << quant_scheme_name(c.spec.scheme) << " g" << c.spec.group_size
                                    << (c.spec.symmetric ? " sym " : " asym ") << shape_str(c.shape) << " seed " << seed);
  check_scheme<true>(c, seed);
  check_scheme<false>(c, seed);
}

INSTANTIATE_TEST_SUITE_P(Schemes, PackedPairs,
                         ::testing::Values(Case{{QuantScheme::Int8}, {5, 48}}, Case{{QuantScheme::Int4, 32}, {3, 96}},
                                           Case{{QuantScheme::Int4, 32, false}, {3, 96}},
                                           Case{{QuantScheme::Int4, 64, false}, {4, 192}},
                                           Case{{QuantScheme::Int4, 128, true}, {2, 256}},
                                           Case{{QuantScheme::Int4, 128, false}, {3, 384}},
                                           Case{{QuantScheme::Q8_0}, {3, 96}}, Case{{QuantScheme::Q4_0}, {4, 160}}));

// int4 read wide (Int4WidePairs: 32 weights a load, one scale) gives, for chunk c, the pairs of
// units 2c and 2c + 1 back to back, its runs are theirs, and its activations pair as theirs do:
// so each of its weights meets its own activation as the unit readers' do (checked above).
template <bool kBf16>
void check_wide(const QuantSpec& spec, const Shape& shape, uint64_t seed) {
  SCOPED_TRACE(kBf16 ? "bf16" : "f16");
  const PackedTensor w = quant::quantize(random_tensor(shape, DType::F32, Device::cpu(), seed, 0.03f), spec);
  const int64_t rows = shape[0], cols = shape[1];
  pu::with_reader(w, nullptr, [&](const auto& reader) {
    using Reader = std::decay_t<decltype(reader)>;
    if constexpr (std::is_same_v<Reader, pu::Int4Reader>) {
      const pp::Int4Pairs narrow{reader};
      const pp::Int4WidePairs wide{reader};
      for (int64_t row = 0; row < rows; ++row)
        for (int c = 0; c < cols / pp::Int4WidePairs::kWeights; ++c) {
          pp::Int4WidePairs::Raw raw;
          wide.load(row, c, raw);
          uint32_t got[2 * pp::kPairs], x[2 * pp::kPairs], got_x[2 * pp::kPairs];
          pp::Int4WidePairs::pairs<kBf16>(raw, got);
          for (int i = 0; i < 2 * pp::kPairs; ++i) x[i] = uint32_t(seed * 2654435761u) ^ uint32_t(i * 40503u + c);
          pp::Int4WidePairs::x_pairs(got_x, x);
          for (int h = 0; h < 2; ++h) {
            pp::Int4Pairs::Raw unit_raw;
            narrow.load(row, 2 * c + h, unit_raw);
            uint32_t want[pp::kPairs], unit_x[pp::kPairs], want_x[pp::kPairs];
            pp::Int4Pairs::pairs<kBf16>(unit_raw, want);
            for (int i = 0; i < pp::kPairs; ++i) unit_x[i] = x[pp::kPairs * h + i];
            pp::Int4Pairs::x_pairs(want_x, unit_x);
            for (int i = 0; i < pp::kPairs; ++i) {
              ASSERT_EQ(got[pp::kPairs * h + i], want[i]) << "row " << row << " chunk " << c << " pair " << i;
              ASSERT_EQ(got_x[pp::kPairs * h + i], want_x[i]) << "chunk " << c << " activation pair " << i;
            }
            for (int j = 0; j < 2; ++j)
              ASSERT_EQ(pp::Int4WidePairs::run(c, 2 * h + j), pp::Int4Pairs::run(2 * c + h, j)) << "chunk " << c;
          }
        }
    } else {
      FAIL() << "not int4";
    }
  });
}

TEST(PackedPairs, WideInt4IsTwoUnits) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  for (const QuantSpec& spec : {QuantSpec{QuantScheme::Int4, 32}, QuantSpec{QuantScheme::Int4, 64, false},
                                QuantSpec{QuantScheme::Int4, 128, true}, QuantSpec{QuantScheme::Int4, 128, false}}) {
    SCOPED_TRACE(::testing::Message() << "g" << spec.group_size << (spec.symmetric ? " sym" : " asym"));
    check_wide<true>(spec, {3, 384}, seed);
    check_wide<false>(spec, {3, 384}, seed);
  }
}

// The magic-number pairs themselves: nibble q in bits 0-3 and 16-19 is 128 + q (bf16) and
// 1024 + q (f16) in each half, which is what the subtraction of kBase + zero relies on.
TEST(PackedPairs, MagicNumbersHoldTheNibble) {
  for (uint32_t q = 0; q < 16; ++q) {
    const uint32_t v = q | (15 - q) << 16;
    EXPECT_EQ(low<true>(v | 0x43004300u), 128.0f + float(q));
    EXPECT_EQ(high<true>(v | 0x43004300u), 128.0f + float(15 - q));
    EXPECT_EQ(low<false>(v | 0x64006400u), 1024.0f + float(q));
    EXPECT_EQ(high<false>(v | 0x64006400u), 1024.0f + float(15 - q));
  }
}

}  // namespace
