// The CPU reference of ops::sample_rows (kernels/ops.h): its draws follow the distribution the
// definition describes (computed here independently, in double), ties at the top-k and top-p
// boundaries stay together, and hostile rows and parameters give a token in range.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "kernels/cpu/sample_row.h"
#include "kernels/ops.h"
#include "kernels/sampling_row.h"

using namespace tessera;

namespace {

// The intended distribution, written plainly: softmax at temperature T, top-k by logit (ties
// with the k-th kept), top-p as the fewest best tie groups reaching p, min-p against the best.
std::vector<double> intended(const std::vector<float>& z, double T, int top_k, double top_p, double min_p) {
  const size_t V = z.size();
  const double m = *std::max_element(z.begin(), z.end());
  std::vector<double> w(V);
  for (size_t v = 0; v < V; ++v) w[v] = std::exp((z[v] - m) / T);
  std::vector<float> sorted(z);
  std::sort(sorted.begin(), sorted.end(), std::greater<>());
  const float kth = top_k > 0 && size_t(top_k) < V ? sorted[top_k - 1] : -INFINITY;
  double total = 0;
  for (size_t v = 0; v < V; ++v) total += z[v] >= kth ? w[v] : 0;
  float pth = -INFINITY;
  if (top_p < 1) {
    for (float t : sorted) {  // thresholds, best first
      double mass = 0;
      for (size_t v = 0; v < V; ++v) mass += z[v] >= t && z[v] >= kth ? w[v] : 0;
      if (mass >= top_p * total * (1 - 1e-12)) {
        pth = t;
        break;
      }
    }
  }
  std::vector<double> p(V, 0);
  double kept = 0;
  for (size_t v = 0; v < V; ++v)
    if (z[v] >= kth && z[v] >= pth && w[v] >= min_p) kept += p[v] = w[v];
  for (double& x : p) x /= kept;
  return p;
}

std::vector<int32_t> draws(const std::vector<float>& z, const SamplingRow& p, int n) {
  std::vector<SamplingRow> rows(n, p);
  for (int i = 0; i < n; ++i) rows[i] = sampling_row(p.temperature, p.top_p, p.min_p, p.top_k, 7, uint64_t(i));
  std::vector<float> tiled;
  for (int i = 0; i < n; ++i) tiled.insert(tiled.end(), z.begin(), z.end());
  const int64_t V = static_cast<int64_t>(z.size());
  Tensor index = Tensor::empty({n}, DType::I32), logprob = Tensor::empty({n}, DType::F32);
  ops::sample_rows(index, logprob, Tensor::from_vector(tiled, {n, V}, DType::F32), sampling_params(rows));
  return index.to_vector<int32_t>();
}

int kept_count(const std::vector<float>& z, const SamplingRow& p) {
  cpu::SampleScratch s;
  cpu::kept_weights(z, p, s);
  return static_cast<int>(std::count_if(s.weights.begin(), s.weights.end(), [](uint64_t q) { return q > 0; }));
}

}  // namespace

TEST(SampleRows, DrawsFollowTheIntendedDistribution) {
  const std::vector<float> z{1.0f, 2.5f, 0.3f, 2.5f, -1.0f, 1.7f, 0.9f};
  struct Case {
    float T;
    int top_k;
    float top_p, min_p;
  };
  for (const Case c : {Case{1.0f, 0, 1.0f, 0.0f}, Case{0.6f, 0, 1.0f, 0.0f}, Case{1.0f, 3, 1.0f, 0.0f},
                       Case{1.0f, 0, 0.8f, 0.0f}, Case{1.5f, 4, 0.9f, 0.0f}, Case{1.0f, 0, 1.0f, 0.3f},
                       Case{2.0f, 6, 0.95f, 0.1f}}) {
    SCOPED_TRACE(::testing::Message() << "T " << c.T << " top_k " << c.top_k << " top_p " << c.top_p << " min_p "
                                      << c.min_p);
    const std::vector<double> want = intended(z, c.T, c.top_k, c.top_p, c.min_p);
    const int n = 40000;
    const std::vector<int32_t> got = draws(z, sampling_row(c.T, c.top_p, c.min_p, c.top_k, 0, 0), n);
    std::vector<double> seen(z.size(), 0);
    for (int32_t t : got) seen.at(t) += 1.0 / n;
    for (size_t v = 0; v < z.size(); ++v) {
      if (want[v] == 0) {
        EXPECT_EQ(seen[v], 0) << "token " << v << " is filtered out";
      } else {
        EXPECT_NEAR(seen[v], want[v], 5 * std::sqrt(want[v] * (1 - want[v]) / n) + 1e-4) << "token " << v;
      }
    }
  }
}

TEST(SampleRows, TiesAtTheTopKAndTopPBoundariesStayTogether) {
  const std::vector<float> z{0.0f, 2.0f, 1.0f, 1.0f, -3.0f};
  EXPECT_EQ(kept_count(z, sampling_row(1.0f, 1.0f, 0.0f, 2, 0, 0)), 3);  // the 2nd best ties with the 3rd
  EXPECT_EQ(kept_count(z, sampling_row(1.0f, 1.0f, 0.0f, 1, 0, 0)), 1);
  // p(2.0) = 0.53 alone; with the tie group {1, 1} the mass passes 0.6: all three stay.
  EXPECT_EQ(kept_count(z, sampling_row(1.0f, 0.6f, 0.0f, 0, 0, 0)), 3);
  EXPECT_EQ(kept_count(z, sampling_row(1.0f, 0.5f, 0.0f, 0, 0, 0)), 1);
  // min_p 0.3: exp(1 - 2) = 0.37 stays, exp(0 - 2) = 0.14 does not.
  EXPECT_EQ(kept_count(z, sampling_row(1.0f, 1.0f, 0.3f, 0, 0, 0)), 3);
}

TEST(SampleRows, SeededDrawsRepeatAndSeedsDiffer) {
  std::vector<float> z(50);
  for (size_t v = 0; v < z.size(); ++v) z[v] = std::sin(float(v));
  const std::vector<int32_t> a = draws(z, sampling_row(1.0f, 1.0f, 0.0f, 0, 0, 0), 64);
  EXPECT_EQ(draws(z, sampling_row(1.0f, 1.0f, 0.0f, 0, 0, 0), 64), a);
  cpu::SampleScratch s;
  int differ = 0;
  for (int i = 0; i < 64; ++i)
    differ += cpu::sample_row(z, sampling_row(1.0f, 1.0f, 0.0f, 0, 8, uint64_t(i)), s) != a[i];
  EXPECT_GT(differ, 40);
}

TEST(SampleRows, GreedyRowsAreArgmaxRowsWithTheirLogprob) {
  const std::vector<float> z{0.5f, 2.0f, -1.0f, 2.0f, 1.0f, 0.0f};
  const Tensor logits = Tensor::from_vector(z, {2, 3}, DType::F32);
  Tensor a = Tensor::empty({2}, DType::I32), a_lp = Tensor::empty({2}, DType::F32);
  Tensor b = Tensor::empty({2}, DType::I32), b_lp = Tensor::empty({2}, DType::F32);
  ops::argmax_rows(a, a_lp, logits);
  ops::sample_rows(b, b_lp, logits, sampling_params(std::vector<SamplingRow>(2)));
  EXPECT_EQ(b.to_vector<int32_t>(), a.to_vector<int32_t>());
  for (int r = 0; r < 2; ++r) EXPECT_NEAR(b_lp.to_vector<float>()[r], a_lp.to_vector<float>()[r], 1e-6);
  // A sampled row's logprob is the raw log-softmax at its token.
  ops::sample_rows(b, b_lp, logits, sampling_params(std::vector<SamplingRow>(2, sampling_row(1, 1, 0, 0, 3, 0))));
  for (int r = 0; r < 2; ++r) {
    const int32_t t = b.to_vector<int32_t>()[r];
    double lse = 0;
    for (int v = 0; v < 3; ++v) lse += std::exp(double(z[3 * r + v]));
    EXPECT_NEAR(b_lp.to_vector<float>()[r], z[3 * r + t] - std::log(lse), 1e-6);
  }
}

TEST(SampleRows, HostileRowsAndParametersGiveATokenInRange) {
  const float nan = NAN, inf = INFINITY;
  const std::vector<std::vector<float>> rows{{nan, nan, nan}, {-inf, -inf, -inf}, {1.0f, inf, inf},
                                             {nan, 1.0f, 2.0f}, {-inf, 0.5f, -inf}};
  const std::vector<SamplingRow> params{sampling_row(1, 1, 0, 0, 1, 1),        sampling_row(-2, 1, 0, 0, 1, 1),
                                        sampling_row(nan, nan, nan, 0, 1, 1),  sampling_row(1, 0, 0, 0, 1, 1),
                                        sampling_row(1, 1, 2, -5, 1, 1),       sampling_row(inf, 1, 0, 99, 1, 1),
                                        sampling_row(1e-30f, 0.5f, 0, 1, 1, 1)};
  cpu::SampleScratch s;
  for (const auto& z : rows)
    for (const SamplingRow& p : params) {
      const int32_t t = cpu::sample_row(z, p, s);
      EXPECT_GE(t, 0);
      EXPECT_LT(t, 3);
    }
  EXPECT_NE(cpu::sample_row(rows[3], params[0], s), 0);  // NaN is never drawn
  EXPECT_EQ(cpu::sample_row(rows[4], params[0], s), 1);
  Tensor index = Tensor::empty({1}, DType::I32), logprob = Tensor::empty({1}, DType::F32);
  try {
    ops::sample_rows(index, logprob, Tensor::from_vector(rows[3], {1, 3}, DType::F32),
                     Tensor::empty({1, 4}, DType::I32));
    ADD_FAILURE() << "params of the wrong shape were taken";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("params must be int32 [1, 8]"), std::string::npos) << e.what();
  }
}
