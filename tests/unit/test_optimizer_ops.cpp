// AdamW and sum_squares on the CPU against formulas written out here in double precision.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "error_text.h"
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

// adamw_spans on the CPU: each span exactly as ops::adamw on it (weight decay only where the span
// decays), the padding after the last span zeroed in the working copy and untouched in the state.
TEST(OptimizerOps, AdamWSpansIsAdamWOnEachSpan) {
  const uint64_t seed = fresh_seed();
  const int64_t n = 1003;
  const std::vector<ops::AdamWSpan> spans{{0, 10, false}, {10, 500, true}, {500, 500, true}, {500, 997, false}};
  auto state = [&](uint64_t at) {
    std::vector<Tensor> t;
    for (int i = 0; i < 3; ++i) t.push_back(random_tensor({n}, DType::F32, Device::cpu(), seed + at + i, 0.1f));
    ops::fill(t[2], 0.01f);  // second moments are positive
    return t;
  };
  std::vector<Tensor> got = state(0), want = state(0);
  Tensor low = random_tensor({n}, DType::BF16, Device::cpu(), seed + 7), want_low = low.clone();
  const Tensor untouched_low = low.clone();
  const ops::AdamWStep s{.lr = 1e-2f, .weight_decay = 0.1f, .step = 3, .grad_scale = 0.5f};
  const Tensor g = random_tensor({n}, DType::F32, Device::cpu(), seed + 9);
  ops::adamw_spans(got[0], g, got[1], got[2], s, low, spans);
  for (const ops::AdamWSpan& span : spans) {
    const int64_t k = span.end - span.begin;
    if (k == 0) continue;
    ops::AdamWStep step = s;
    if (!span.decays) step.weight_decay = 0.0f;
    auto part = [&](const Tensor& t) { return t.flat_slice(span.begin, k); };
    ops::adamw(part(want[0]), part(g), part(want[1]), part(want[2]), step, part(want_low));
  }
  for (int i = 0; i < 3; ++i) EXPECT_EQ(got[i].to_vector<float>(), want[i].to_vector<float>()) << "tensor " << i;
  const std::vector<uint16_t> bits = low.to_vector<uint16_t>(), want_bits = want_low.to_vector<uint16_t>();
  for (int64_t i = 0; i < n; ++i) EXPECT_EQ(bits[i], i < 997 ? want_bits[i] : 0) << "element " << i;
  EXPECT_NE(bits, untouched_low.to_vector<uint16_t>());
  // Decay only where the span says so: with every span decaying, element 5 ends elsewhere and
  // element 20 in the same place.
  std::vector<Tensor> decayed = state(0);
  std::vector<ops::AdamWSpan> all = spans;
  for (ops::AdamWSpan& span : all) span.decays = true;
  ops::adamw_spans(decayed[0], g, decayed[1], decayed[2], s, Tensor(), all);
  EXPECT_NE(decayed[0].to_vector<float>()[5], got[0].to_vector<float>()[5]);
  EXPECT_EQ(decayed[0].to_vector<float>()[20], got[0].to_vector<float>()[20]);
}

// AdamWStep.zero_grad: the same update, and the gradient (padding after the spans included) left
// all zeros; without it the gradient is not touched.
TEST(OptimizerOps, ZeroGradLeavesTheUpdateAndZeroesTheGradient) {
  const uint64_t seed = fresh_seed();
  const int64_t n = 70001;
  const std::vector<ops::AdamWSpan> spans{{0, 30, false}, {30, 69000, true}};
  std::vector<std::vector<float>> results[2];
  for (bool zero : {false, true}) {
    Tensor p = random_tensor({n}, DType::F32, Device::cpu(), seed, 0.1f);
    Tensor m = random_tensor({n}, DType::F32, Device::cpu(), seed + 1, 0.1f), v = Tensor::empty({n}, DType::F32);
    ops::fill(v, 0.01f);
    Tensor g = random_tensor({n}, DType::F32, Device::cpu(), seed + 2), low = Tensor::empty({n}, DType::BF16);
    const Tensor g0 = g.clone();
    const ops::AdamWStep s{.lr = 1e-2f, .weight_decay = 0.1f, .step = 2, .grad_scale = 0.5f, .zero_grad = zero};
    ops::adamw_spans(p, g, m, v, s, low, spans);
    for (const Tensor& t : {p, m, v, low}) results[zero].push_back(host_f32(t));
    if (zero)
      EXPECT_EQ(squared_norm(g), 0.0);
    else
      EXPECT_EQ(g.to_vector<float>(), g0.to_vector<float>());
  }
  EXPECT_EQ(results[0], results[1]);
  EXPECT_GT(relative_error(results[0][1], host_f32(random_tensor({n}, DType::F32, Device::cpu(), seed + 1, 0.1f))), 1e-3);
}

TEST(OptimizerOps, AdamWSpansMustTileTheBufferInOrder) {
  Tensor p = Tensor::empty({8}, DType::F32), g = Tensor::empty({8}, DType::F32);
  Tensor m = Tensor::empty({8}, DType::F32), v = Tensor::empty({8}, DType::F32);
  for (const Tensor& t : {p, g, m, v}) ops::fill(t, 0.5f);
  auto message = [&](const std::vector<ops::AdamWSpan>& spans) {
    return error_of([&] { ops::adamw_spans(p, g, m, v, {}, Tensor(), spans); });
  };
  EXPECT_EQ(message({{1, 4, true}}), "adamw_spans: spans must tile the buffer in order; [1, 4) follows element 0");
  EXPECT_EQ(message({{0, 4, true}, {5, 6, true}}),
            "adamw_spans: spans must tile the buffer in order; [5, 6) follows element 4");
  EXPECT_EQ(message({{0, 9, true}}), "adamw_spans: the spans end at element 9, past the buffer's 8");
  EXPECT_EQ(message({{0, 8, true}}), kNoError);
}
