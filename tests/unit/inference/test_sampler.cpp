// Each sampling filter on hand-computed rows, and the seeded draw.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/inference/sampler.h"
#include "error_text.h"

using namespace tessera;
using namespace tessera::inference;

namespace {

// Logits whose softmax is exactly `probs`.
std::vector<float> logits_of(const std::vector<double>& probs) {
  std::vector<float> z;
  for (double p : probs) z.push_back(static_cast<float>(std::log(p)));
  return z;
}

SamplingParams plain() {
  SamplingParams p;
  p.temperature = 1.0;
  return p;
}

void expect_probs(const std::vector<double>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-6) << "token " << i;
}

}  // namespace

TEST(Sampler, GreedyTakesTheArgmaxAndTheLowestIdOfTies) {
  SamplingParams p;
  p.temperature = 0;
  const std::vector<float> z{0.5f, 2.0f, -1.0f, 2.0f};
  EXPECT_EQ(sample_token(z, p, 1, 0, {}, {}).token, 1);
  expect_probs(sampling_distribution(z, p, {}, {}), {0, 1, 0, 0});
}

TEST(Sampler, TemperatureSharpensTheSoftmax) {
  SamplingParams p = plain();
  const std::vector<float> z = logits_of({0.5, 0.3, 0.15, 0.05});
  expect_probs(sampling_distribution(z, p, {}, {}), {0.5, 0.3, 0.15, 0.05});
  p.temperature = 0.5;  // p^2 renormalised
  const double s = 0.25 + 0.09 + 0.0225 + 0.0025;
  expect_probs(sampling_distribution(z, p, {}, {}), {0.25 / s, 0.09 / s, 0.0225 / s, 0.0025 / s});
}

TEST(Sampler, TopKTopPMinP) {
  const std::vector<float> z = logits_of({0.15, 0.5, 0.05, 0.3});
  SamplingParams k = plain();
  k.top_k = 2;
  expect_probs(sampling_distribution(z, k, {}, {}), {0, 0.625, 0, 0.375});
  SamplingParams tp = plain();
  tp.top_p = 0.7;  // 0.5 + 0.3 reaches it
  expect_probs(sampling_distribution(z, tp, {}, {}), {0, 0.625, 0, 0.375});
  tp.top_p = 0.81;  // needs the third
  expect_probs(sampling_distribution(z, tp, {}, {}), {0.15 / 0.95, 0.5 / 0.95, 0, 0.3 / 0.95});
  SamplingParams mp = plain();
  mp.min_p = 0.4;  // keeps p >= 0.2
  expect_probs(sampling_distribution(z, mp, {}, {}), {0, 0.625, 0, 0.375});
}

TEST(Sampler, RepetitionPresenceFrequencyPenalties) {
  SamplingParams p;
  p.temperature = 0;
  p.repetition_penalty = 2.0;
  // Seen tokens 0 and 1 (prompt) : 2 -> 1, -1 -> -2; token 2 stays 1.5 and wins.
  EXPECT_EQ(sample_token(std::vector<float>{2.0f, -1.0f, 1.5f}, p, 0, 0, std::vector<int32_t>{0, 1}, {}).token, 2);
  SamplingParams q = plain();
  q.frequency_penalty = 0.5;
  q.presence_penalty = 1.0;
  const std::vector<float> z{0, 0, 0};
  const std::vector<int32_t> generated{2, 2, 0};
  // logits after: 0 - 1.5, 0, 0 - 2
  const double a = std::exp(-1.5), b = 1.0, c = std::exp(-2.0);
  expect_probs(sampling_distribution(z, q, {}, generated), {a / (a + b + c), b / (a + b + c), c / (a + b + c)});
  // Presence and frequency look at the generated tokens only, not the prompt.
  expect_probs(sampling_distribution(z, q, generated, {}), {1 / 3.0, 1 / 3.0, 1 / 3.0});
}

// The draw is a function of (seed, index): the same pair gives the same token, and over many
// indices the tokens follow the filtered distribution.
TEST(Sampler, SeededDrawsAreReproducibleAndFollowTheDistribution) {
  SamplingParams p = plain();
  p.top_k = 3;
  const std::vector<float> z = logits_of({0.1, 0.4, 0.2, 0.3});
  const std::vector<double> want = sampling_distribution(z, p, {}, {});
  std::vector<double> seen(4, 0);
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    const Sample s = sample_token(z, p, 42, i, {}, {});
    EXPECT_EQ(sample_token(z, p, 42, i, {}, {}).token, s.token);
    seen[s.token] += 1.0 / n;
  }
  for (int t = 0; t < 4; ++t) EXPECT_NEAR(seen[t], want[t], 0.015) << "token " << t;
  EXPECT_EQ(seen[0], 0);
  int differ = 0;
  for (int i = 0; i < 50; ++i) differ += sample_token(z, p, 42, i, {}, {}).token != sample_token(z, p, 43, i, {}, {}).token;
  EXPECT_GT(differ, 10);
}

TEST(Sampler, LogprobsAreOfTheRawDistribution) {
  SamplingParams p;
  p.temperature = 0;
  p.repetition_penalty = 1.5;
  const std::vector<float> z = logits_of({0.1, 0.6, 0.3});
  const Sample s = sample_token(z, p, 0, 0, std::vector<int32_t>{1}, {}, 2);
  EXPECT_NEAR(s.logprob, std::log(s.token == 1 ? 0.6 : 0.3), 1e-6);
  ASSERT_EQ(s.top.size(), 2u);
  EXPECT_EQ(s.top[0].first, 1);
  EXPECT_NEAR(s.top[0].second, std::log(0.6), 1e-6);
  EXPECT_EQ(s.top[1].first, 2);
  EXPECT_NEAR(s.top[1].second, std::log(0.3), 1e-6);
}

TEST(Sampler, RefusesParametersOutOfRange) {
  auto message = [](auto change) {
    SamplingParams p;
    change(p);
    return testing_util::error_of([&] { check_sampling(p); });
  };
  EXPECT_EQ(message([](SamplingParams&) {}), testing_util::kNoError);
  EXPECT_NE(message([](SamplingParams& p) { p.temperature = -0.5; }).find("temperature"), std::string::npos);
  EXPECT_NE(message([](SamplingParams& p) { p.top_p = 0; }).find("top_p"), std::string::npos);
  EXPECT_NE(message([](SamplingParams& p) { p.top_k = -1; }).find("top_k"), std::string::npos);
  EXPECT_NE(message([](SamplingParams& p) { p.min_p = 1.5; }).find("min_p"), std::string::npos);
  EXPECT_NE(message([](SamplingParams& p) { p.repetition_penalty = 0; }).find("repetition_penalty"), std::string::npos);
  EXPECT_NE(message([](SamplingParams& p) { p.presence_penalty = 3; }).find("presence_penalty"), std::string::npos);
}
