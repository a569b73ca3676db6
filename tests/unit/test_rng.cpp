#include <gtest/gtest.h>

#include <cmath>

#include "core/rng.h"
#include "core/tensor.h"
#include "kernels/ops.h"

using namespace tessera;

// Known-answer vectors of Philox-4x32-10 from the Random123 distribution (kat_vectors).
TEST(Rng, PhiloxKnownAnswers) {
  rng::Philox4 zero = rng::philox(0, 0);
  EXPECT_EQ(zero.v[0], 0x6627e8d5u);
  EXPECT_EQ(zero.v[1], 0xe169c58du);
  EXPECT_EQ(zero.v[2], 0xbc57ac4cu);
  EXPECT_EQ(zero.v[3], 0x9b00dbd8u);
}

TEST(Rng, UniformAndNormalMoments) {
  const int64_t n = 200000;
  Tensor u = Tensor::empty({n}, DType::F32), z = Tensor::empty({n}, DType::F32);
  ops::fill_uniform(u, 1234, 99, -1.0f, 3.0f);
  ops::fill_normal(z, 1234, 99, 0.5f, 2.0f);
  double su = 0, sz = 0, sz2 = 0;
  float lo = 1e9f, hi = -1e9f;
  for (float x : u.to_vector<float>()) su += x, lo = std::min(lo, x), hi = std::max(hi, x);
  for (float x : z.to_vector<float>()) sz += x, sz2 += x * double(x);
  EXPECT_GE(lo, -1.0f);
  EXPECT_LT(hi, 3.0f);
  EXPECT_NEAR(su / n, 1.0, 0.02);
  EXPECT_NEAR(sz / n, 0.5, 0.02);
  EXPECT_NEAR(std::sqrt(sz2 / n - (sz / n) * (sz / n)), 2.0, 0.02);
}

TEST(Rng, OffsetsContinueTheStream) {
  Tensor whole = Tensor::empty({10}, DType::F32), tail = Tensor::empty({4}, DType::F32);
  ops::fill_normal(whole, 7, 100, 0, 1);
  ops::fill_normal(tail, 7, 106, 0, 1);
  auto w = whole.to_vector<float>(), t = tail.to_vector<float>();
  for (int i = 0; i < 4; ++i) EXPECT_EQ(w[6 + i], t[i]);
  EXPECT_NE(w[0], w[1]);
}
