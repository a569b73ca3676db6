// The CPU reference ops against plain loops written independently here.
#include <gtest/gtest.h>

#include "core/error.h"
#include "kernels/ops.h"
#include "random_tensors.h"

using namespace tessera;
using namespace tessera::testing_util;

namespace {

// C[i][j] = alpha * sum_p op(A)[i][p] op(B)[p][j] + beta * C[i][j] + bias[j], in double.
std::vector<float> naive_gemm(const std::vector<float>& a, const std::vector<float>& b, std::vector<float> c,
                              const std::vector<float>& bias, int64_t m, int64_t n, int64_t k, bool ta, bool tb,
                              float alpha, float beta) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (int64_t p = 0; p < k; ++p) acc += double(ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j]);
      c[i * n + j] = float(alpha * acc + beta * c[i * n + j] + (bias.empty() ? 0.0 : bias[j]));
    }
  return c;
}

}  // namespace

class CpuGemm : public ::testing::TestWithParam<std::tuple<bool, bool, bool, DType>> {};

TEST_P(CpuGemm, MatchesNaiveLoops) {
  const auto [ta, tb, with_bias, dtype] = GetParam();
  const int64_t m = 37, n = 29, k = 41;
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  Tensor a = random_tensor(ta ? Shape{k, m} : Shape{m, k}, dtype, Device::cpu(), seed);
  Tensor b = random_tensor(tb ? Shape{n, k} : Shape{k, n}, dtype, Device::cpu(), seed + 1);
  Tensor c = random_tensor({m, n}, DType::F32, Device::cpu(), seed + 2);
  Tensor bias = with_bias ? random_tensor({n}, DType::F32, Device::cpu(), seed + 3) : Tensor();
  auto want = naive_gemm(host_f32(a), host_f32(b), host_f32(c), with_bias ? host_f32(bias) : std::vector<float>{}, m,
                         n, k, ta, tb, 0.5f, 0.25f);
  ops::gemm(c, a, b, ta, tb, 0.5f, 0.25f, bias);
  EXPECT_LT(relative_error(host_f32(c), want), 1e-6);
}

INSTANTIATE_TEST_SUITE_P(AllLayouts, CpuGemm,
                         ::testing::Combine(::testing::Bool(), ::testing::Bool(), ::testing::Bool(),
                                            ::testing::Values(DType::F32, DType::BF16)));

TEST(CpuOps, GemmFlattensLeadingDimensions) {
  const uint64_t seed = fresh_seed();
  Tensor x = random_tensor({2, 3, 8}, DType::F32, Device::cpu(), seed);  // [batch, seq, in]
  Tensor w = random_tensor({5, 8}, DType::F32, Device::cpu(), seed + 1);  // [out, in]
  Tensor y = Tensor::empty({2, 3, 5}, DType::F32);
  ops::gemm(y, x, w, false, true);
  auto want = naive_gemm(host_f32(x), host_f32(w), std::vector<float>(30), {}, 6, 5, 8, false, true, 1, 0);
  EXPECT_LT(relative_error(host_f32(y), want), 1e-6);
}

TEST(CpuOps, GemmRejectsMismatchedShapes) {
  Tensor a = Tensor::empty({4, 3}, DType::F32), b = Tensor::empty({5, 2}, DType::F32);
  Tensor c = Tensor::empty({4, 2}, DType::F32);
  try {
    ops::gemm(c, a, b);
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "gemm: inner dimensions differ: A f32[4, 3] cpu and B f32[5, 2] cpu");
  }
  EXPECT_THROW(ops::gemm(Tensor::empty({4, 2}, DType::BF16), a, Tensor::empty({3, 2}, DType::F32)), Error);
  EXPECT_THROW(ops::gemm(c, a, Tensor::empty({3, 2}, DType::F32), false, false, 1, 0, Tensor::empty({3}, DType::F32)),
               Error);
}

TEST(CpuOps, AddScaleFillCast) {
  const uint64_t seed = fresh_seed();
  Tensor a = random_tensor({1000}, DType::F32, Device::cpu(), seed);
  Tensor b = random_tensor({1000}, DType::F32, Device::cpu(), seed + 1);
  Tensor out = Tensor::empty({1000}, DType::F32);
  ops::add(out, a, b, 2.0f, -0.5f);
  auto va = a.to_vector<float>(), vb = b.to_vector<float>(), vo = out.to_vector<float>();
  for (int i = 0; i < 1000; ++i) ASSERT_FLOAT_EQ(vo[i], 2.0f * va[i] - 0.5f * vb[i]);
  ops::scale(out, a, 3.0f);
  vo = out.to_vector<float>();
  for (int i = 0; i < 1000; ++i) ASSERT_FLOAT_EQ(vo[i], 3.0f * va[i]);
  ops::fill(out, 1.5f);
  for (float v : out.to_vector<float>()) ASSERT_EQ(v, 1.5f);

  Tensor half = ops::cast(a, DType::BF16);
  auto bits = half.to_vector<uint16_t>();
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(bits[i], f32_to_bf16_bits(va[i]));
  Tensor f16 = ops::cast(half, DType::F16);
  Tensor back = ops::cast(f16, DType::F32);
  EXPECT_LT(relative_error(back, a), 5e-3);
  EXPECT_THROW(ops::cast(Tensor::empty({3}, DType::I32), DType::F32), Error);
  EXPECT_THROW(ops::add(out, a, Tensor::empty({999}, DType::F32)), Error);
}

TEST(CpuOps, CudaTensorsFailClearlyWithoutCuda) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "a GPU is present";
  EXPECT_THROW(Tensor::empty({3}, DType::F32, Device::cuda(0)), Error);
}
