// CUDA lora_batched against the CPU reference on fresh random inputs: several adapters of
// different ranks (one of rank 0), NaN padding past each rank (never read), rows of every adapter
// and of none in a shuffled order, f32 and bf16, shapes off the warp and block sizes, a batch
// past the grid's 65535 rows; and a whole decode-sized projection.
#include <gtest/gtest.h>

#include <cmath>
#include <tuple>
#include <vector>

#include "kernels/ops.h"
#include "lora_batch.h"
#include "random_tensors.h"

using namespace tessera;
using namespace tessera::testing_util;

namespace {

const Device gpu = Device::cuda(0);

void check(int64_t rows, int64_t in, int64_t out, const std::vector<int32_t>& ranks, DType dtype) {
  const uint64_t seed = fresh_seed();
  const LoraBatch b = make_lora_batch(rows, in, out, ranks, seed);
  auto low = [&](const Tensor& t) { return ops::cast(t, dtype); };
  auto f32 = [](const Tensor& t) { return ops::cast(t, DType::F32); };
  const Tensor x = low(b.x), a = low(b.a), bb = low(b.b), y0 = low(b.y);
  Tensor y = y0.to(gpu);
  ops::lora_batched(y, x.to(gpu), a.to(gpu), bb.to(gpu), b.ranks.to(gpu), b.scales.to(gpu), b.index.to(gpu));
  Tensor ref = f32(y0);
  ops::lora_batched(ref, f32(x), f32(a), f32(bb), b.ranks, b.scales, b.index);
  const std::vector<float> got = host_f32(y), want = host_f32(low(ref)), before = host_f32(y0);
  // f32: summation order only; bf16: one rounding of y, 2^-8 of |y| (plus one ulp either side of a
  // rounding boundary the two sums can straddle), so the bound grows with the value.
  auto allowed = [&](float w) { return dtype == DType::F32 ? 1e-4 : 1e-2 + std::abs(w) * 0x1p-7; };
  size_t nans = 0, touched = 0, beyond = 0;
  double max_diff = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    nans += std::isnan(got[i]);
    const double diff = std::abs(double(got[i]) - want[i]);
    max_diff = std::max(max_diff, diff);
    beyond += diff > allowed(want[i]);
  }
  for (int64_t t = 0; t < rows; ++t) {
    const int32_t n = b.row_adapter[t];
    const bool adapted = n >= 0 && b.rank[n] > 0;
    for (int64_t o = 0; o < out; ++o) {
      if (!adapted) ASSERT_EQ(got[t * out + o], before[t * out + o]) << "row " << t << " of no adapter; seed " << seed;
      touched += adapted && got[t * out + o] != before[t * out + o];
    }
  }
  EXPECT_EQ(nans, 0u) << "the NaN padding was read; seed " << seed;
  EXPECT_GT(touched, 0u) << "seed " << seed;
  EXPECT_EQ(beyond, 0u) << dtype_name(dtype) << " largest difference " << max_diff << "; seed " << seed;
  // f32 over a single output column (out = 1) has few values to average over: 1e-5, not 1e-6.
  EXPECT_LT(relative_error(got, want), dtype == DType::F32 ? 1e-5 : 4e-3) << "seed " << seed;
}

using Param = std::tuple<DType, int64_t /*rows*/, int64_t /*in*/, int64_t /*out*/>;
class CudaLoraBatched : public ::testing::TestWithParam<Param> {};

TEST_P(CudaLoraBatched, MatchesCpu) {
  TS_REQUIRE_GPU();
  const auto [dtype, rows, in, out] = GetParam();
  check(rows, in, out, {8, 1, 0, 16, 5}, dtype);
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaLoraBatched,
                         ::testing::Combine(::testing::Values(DType::F32, DType::BF16), ::testing::Values(1, 7, 130),
                                            ::testing::Values(33, 256, 1000), ::testing::Values(1, 300, 2048)));

TEST(CudaLoraBatchedOps, OneAdapterRankSixtyFour) {
  TS_REQUIRE_GPU();
  check(64, 2048, 512, {64}, DType::BF16);
}

TEST(CudaLoraBatchedOps, MoreRowsThanTheGridHolds) {
  TS_REQUIRE_GPU();
  check(70000, 40, 24, {4, 2}, DType::F32);
}

}  // namespace
