// kernels/packed_units.h on the host: every unit of every scheme's matrix gives
// (code - zero) * scale equal, bit for bit, to the dequantized weights at the unit's two runs of
// 8 elements, and the units of a row cover it once. The fused CUDA gemv reads weights this way.
// int4 and int8 runs of 8 (the run-wise dequantize's reads) equal it too.
#include <gtest/gtest.h>

#include <set>
#include <type_traits>
#include <vector>

#include "kernels/packed_units.h"
#include "quant/packed.h"
#include "random_tensors.h"

using namespace tessera;
using namespace tessera::testing_util;
namespace pu = tessera::packed_units;

namespace {

struct Case {
  QuantSpec spec;
  Shape shape;
};

class PackedUnits : public ::testing::TestWithParam<Case> {};

TEST_P(PackedUnits, EqualDequantize) {
  const Case c = GetParam();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << quant_scheme_name(c.spec.scheme) << shape_str(c.shape) << " seed " << seed);
  const Tensor x = random_tensor(c.shape, DType::F32, Device::cpu(), seed, 0.03f);
  const PackedTensor w = quant::quantize(x, c.spec);
  const std::vector<float> want = quant::dequantize(w, DType::F32).to_vector<float>();
  const int64_t rows = c.shape[0], cols = c.shape[1];
  ASSERT_TRUE(pu::readable(cols));
  int64_t checked = 0;
  pu::with_reader(w, &quant_math::nf4_tables(), [&](const auto& reader) {
    using Reader = std::decay_t<decltype(reader)>;
    for (int64_t row = 0; row < rows; ++row) {
      std::set<int> seen;
      for (int u = 0; u < cols / pu::kUnit; ++u) {
        pu::Unit t;
        reader.load(row, u, t);
        for (int e = 0; e < pu::kUnit; ++e) {
          const int col = e < 8 ? Reader::first(u) + e : Reader::second(u) + e - 8;
          ASSERT_TRUE(seen.insert(col).second) << "column " << col << " twice";
          const float got = (t.code[e] - t.zero) * t.scale;
          ASSERT_EQ(got, want[row * cols + col]) << "row " << row << " unit " << u << " element " << e;
          ++checked;
        }
      }
      ASSERT_EQ(int64_t(seen.size()), cols);
    }
  });
  EXPECT_EQ(checked, rows * cols);
}

INSTANTIATE_TEST_SUITE_P(Schemes, PackedUnits,
                         ::testing::Values(Case{{QuantScheme::Int8}, {5, 48}}, Case{{QuantScheme::Int4, 32}, {3, 96}},
                                           Case{{QuantScheme::Int4, 64, false}, {4, 192}},
                                           Case{{QuantScheme::Int4, 128, true}, {2, 256}},
                                           Case{{QuantScheme::Int4, 128, false}, {3, 384}},
                                           Case{{QuantScheme::NF4}, {7, 80}},  // blocks of 64 across rows
                                           Case{{QuantScheme::Q8_0}, {3, 96}}, Case{{QuantScheme::Q4_0}, {4, 160}}));

// int4 and int8 read run by run (Int4Runs, Int8Runs: the run-wise dequantize) give every weight
// bit for bit.
TEST(PackedUnits, RunsEqualDequantize) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  for (const Case& c : {Case{{QuantScheme::Int8}, {5, 48}}, Case{{QuantScheme::Int4, 32}, {3, 96}},
                        Case{{QuantScheme::Int4, 64, false}, {4, 192}}, Case{{QuantScheme::Int4, 128, true}, {2, 256}},
                        Case{{QuantScheme::Int4, 128, false}, {3, 384}}}) {
    SCOPED_TRACE(::testing::Message() << quant_scheme_name(c.spec.scheme) << shape_str(c.shape));
    const PackedTensor w = quant::quantize(random_tensor(c.shape, DType::F32, Device::cpu(), seed, 0.03f), c.spec);
    const std::vector<float> want = quant::dequantize(w, DType::F32).to_vector<float>();
    const int64_t rows = c.shape[0], cols = c.shape[1];
    int64_t checked = 0;
    auto check = [&](const auto& runs) {
      for (int64_t row = 0; row < rows; ++row)
        for (int64_t run = 0; run < cols / 8; ++run) {
          typename std::decay_t<decltype(runs)>::Raw raw;
          runs.fetch(row, run, raw);
          float got[8];
          runs.values(raw, got);
          for (int e = 0; e < 8; ++e, ++checked)
            ASSERT_EQ(got[e], want[row * cols + 8 * run + e]) << "row " << row << " run " << run << " element " << e;
        }
    };
    pu::with_reader(w, nullptr, [&](const auto& reader) {
      using Reader = std::decay_t<decltype(reader)>;
      if constexpr (std::is_same_v<Reader, pu::Int4Reader>) check(pu::Int4Runs{reader});
      if constexpr (std::is_same_v<Reader, pu::Int8Reader>) check(pu::Int8Runs{reader});
    });
    EXPECT_EQ(checked, rows * cols);
  }
}

TEST(PackedUnits, ReadableNeedsWholeUnits) {
  EXPECT_TRUE(pu::readable(4096));
  EXPECT_FALSE(pu::readable(40));
}

}  // namespace
