// ops::lora_batched on the CPU (the reference) against dense gemms over each adapter's rows
// gathered apart: several adapters of different ranks, padding never read, rows in any order,
// rows of no adapter untouched; and its one-line errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "error_text.h"
#include "kernels/ops.h"
#include "lora_batch.h"

using namespace tessera;
using namespace tessera::testing_util;

namespace {

// y + s_n (x A_n^T) B_n^T for the rows of adapter n, through ops::gemm on the rows gathered apart.
std::vector<float> expected(const LoraBatch& b) {
  std::vector<float> y = b.y.to_vector<float>();
  const int64_t N = static_cast<int64_t>(b.rank.size());
  for (int64_t n = 0; n < N; ++n) {
    const int64_t r = b.rank[n];
    std::vector<int64_t> rows;
    for (int64_t t = 0; t < b.rows; ++t)
      if (b.row_adapter[t] == n) rows.push_back(t);
    if (rows.empty() || r == 0) continue;
    const int64_t m = static_cast<int64_t>(rows.size());
    Tensor x = Tensor::empty({m, b.in}, DType::F32), a = Tensor::empty({r, b.in}, DType::F32);
    Tensor bn = Tensor::empty({b.out, r}, DType::F32);
    for (int64_t i = 0; i < m; ++i)
      std::memcpy(x.data_as<float>() + i * b.in, b.x.data_as<float>() + rows[i] * b.in, sizeof(float) * b.in);
    std::memcpy(a.data_as<float>(), b.a.data_as<float>() + n * b.max_rank * b.in, sizeof(float) * r * b.in);
    for (int64_t o = 0; o < b.out; ++o)
      std::memcpy(bn.data_as<float>() + o * r, b.b.data_as<float>() + (n * b.out + o) * b.max_rank, sizeof(float) * r);
    Tensor v = Tensor::empty({m, r}, DType::F32), d = Tensor::empty({m, b.out}, DType::F32);
    ops::gemm(v, x, a, false, true);
    ops::gemm(d, v, bn, false, true, b.scale[n]);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t o = 0; o < b.out; ++o) y[rows[i] * b.out + o] += d.data_as<float>()[i * b.out + o];
  }
  return y;
}

}  // namespace

TEST(LoraBatched, EqualsEachAdaptersGemmsOnItsRows) {
  for (const auto& ranks : std::vector<std::vector<int32_t>>{{4, 1, 0, 8}, {16}, {3, 3}}) {
    const uint64_t seed = fresh_seed();
    const LoraBatch b = make_lora_batch(23, 37, 45, ranks, seed);
    Tensor y = b.y.clone();
    ops::lora_batched(y, b.x, b.a, b.b, b.ranks, b.scales, b.index);
    const std::vector<float> got = y.to_vector<float>(), want = expected(b), before = b.y.to_vector<float>();
    double max_diff = 0;
    for (size_t i = 0; i < got.size(); ++i) max_diff = std::max(max_diff, std::abs(double(got[i]) - want[i]));
    EXPECT_LT(max_diff, 1e-5) << "seed " << seed;
    for (int64_t t = 0; t < b.rows; ++t) {
      const int32_t n = b.row_adapter[t];
      if (n >= 0 && b.rank[n] > 0) continue;
      for (int64_t o = 0; o < b.out; ++o)
        ASSERT_EQ(got[t * b.out + o], before[t * b.out + o]) << "row " << t << " has no adapter here; seed " << seed;
    }
  }
}

TEST(LoraBatched, Bf16RoundsOnceLikeF32ThenRounded) {
  const uint64_t seed = fresh_seed();
  const LoraBatch b = make_lora_batch(9, 64, 32, {2, 5}, seed);
  auto bf = [](const Tensor& t) { return ops::cast(t, DType::BF16); };
  auto f32 = [](const Tensor& t) { return ops::cast(t, DType::F32); };
  Tensor y16 = bf(b.y), y32 = f32(bf(b.y));
  ops::lora_batched(y16, bf(b.x), bf(b.a), bf(b.b), b.ranks, b.scales, b.index);
  ops::lora_batched(y32, f32(bf(b.x)), f32(bf(b.a)), f32(bf(b.b)), b.ranks, b.scales, b.index);
  EXPECT_EQ(f32(y16).to_vector<float>(), f32(bf(y32)).to_vector<float>()) << "seed " << seed;
}

TEST(LoraBatched, RefusesBadShapesAndIndices) {
  const LoraBatch b = make_lora_batch(4, 8, 6, {2, 3}, 1);
  Tensor y = b.y.clone();
  EXPECT_EQ(error_of([&] {
              ops::lora_batched(y, b.x, b.a, b.b, b.ranks, b.scales, Tensor::from_vector(std::vector<int32_t>{0, 1, 2, -1},
                                                                                          {4}, DType::I32));
            }),
            "lora_batched: index[2] = 2 is outside [-1, 2)");
  EXPECT_EQ(error_of([&] {
              ops::lora_batched(y, b.x, b.a, b.b, Tensor::from_vector(std::vector<int32_t>{4, 1}, {2}, DType::I32),
                                b.scales, b.index);
            }),
            "lora_batched: ranks[0] = 4 is outside [0, 3]");
  EXPECT_EQ(error_of([&] { ops::lora_batched(y, b.x, b.b, b.b, b.ranks, b.scales, b.index); }),
            "lora_batched: a is f32[2, 6, 3] cpu, expected [2, 6, 8]");
}
