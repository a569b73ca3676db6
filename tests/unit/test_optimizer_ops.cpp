// AdamW and sum_squares on the CPU against formulas written out here in double precision.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "kernels/ops.h"
#include "random_tensors.h"

using namespace tessera;
using namespace tessera::testing_util;

TEST(OptimizerOps, AdamWMatchesTheTorchFormula) {
  const int64_t n = 1000;
  const uint64_t seed = fresh_seed();
  Tensor p = random_tensor({n}, DType::F32, Device::cpu(), seed);
  Tensor m = Tensor::empty({n}, DType::F32), v = Tensor::empty({n}, DType::F32);
  ops::fill(m, 0.0f);
  ops::fill(v, 0.0f);
  const std::vector<float> p0 = p.to_vector<float>();
  std::vector<double> rp(p0.begin(), p0.end()), rm(n, 0), rv(n, 0);
  ops::AdamWStep s{.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
  Tensor low = Tensor::empty({n}, DType::BF16);
  for (int step = 1; step <= 5; ++step) {
    Tensor g = random_tensor({n}, DType::F32, Device::cpu(), seed + step);
    s.step = step;
    s.grad_scale = 0.5f;
    ops::adamw(p, g, m, v, s, low);
    auto vg = g.to_vector<float>();
    for (int64_t i = 0; i < n; ++i) {
      const double gi = vg[i] * 0.5;
      rm[i] = 0.9 * rm[i] + 0.1 * gi;
      rv[i] = 0.95 * rv[i] + 0.05 * gi * gi;
      const double mhat = rm[i] / (1 - std::pow(0.9, step)), vhat = rv[i] / (1 - std::pow(0.95, step));
      rp[i] = rp[i] * (1 - 1e-2 * 0.1) - 1e-2 * mhat / (std::sqrt(vhat) + 1e-8);
    }
  }
  auto got = p.to_vector<float>();
  auto got_low = low.to_vector<uint16_t>();
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_NEAR(got[i], rp[i], 1e-5 * std::max(1.0, std::abs(rp[i]))) << "element " << i << " seed " << seed;
    ASSERT_EQ(got_low[i], f32_to_bf16_bits(got[i]));
  }
}

TEST(OptimizerOps, FirstStepMovesEachWeightByLr) {
  // With zero moments, step 1 gives m_hat = g and v_hat = g^2: every weight moves by lr * sign(g).
  Tensor p = Tensor::from_vector<float>({1.0f, -2.0f, 3.0f}, {3}, DType::F32);
  Tensor g = Tensor::from_vector<float>({0.5f, -4.0f, 1e-3f}, {3}, DType::F32);
  Tensor m = Tensor::from_vector<float>({0, 0, 0}, {3}, DType::F32), v = Tensor::from_vector<float>({0, 0, 0}, {3}, DType::F32);
  ops::adamw(p, g, m, v, {.lr = 0.1f, .eps = 0.0f});
  EXPECT_EQ(p.to_vector<float>(), (std::vector<float>{0.9f, -1.9f, 2.9f}));
  EXPECT_THROW(ops::adamw(p, g, m, Tensor::empty({2}, DType::F32), {}), Error);
  EXPECT_THROW(ops::adamw(p, g, m, v, {.step = 0}), Error);
}

TEST(OptimizerOps, SumSquaresAccumulates) {
  const uint64_t seed = fresh_seed();
  Tensor x = random_tensor({4097}, DType::BF16, Device::cpu(), seed);
  double want = 0;
  for (float f : host_f32(x)) want += double(f) * f;
  Tensor out = Tensor::from_vector<float>({1.0f}, {1}, DType::F32);
  ops::sum_squares(out, x);
  EXPECT_NEAR(out.to_vector<float>()[0], want + 1.0, 1e-5 * want);
}
