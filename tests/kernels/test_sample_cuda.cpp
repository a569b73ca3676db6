// sample_rows on the GPU against the CPU reference (tests/kernels, label gpu): many rows of fresh
// random logits, each with its own temperature, top-k, top-p, min-p and Philox counter, for odd
// and Llama-3-sized vocabularies. The backends' f32 exp may differ in the last bit, so a row may
// legitimately differ where its decision lies within that rounding of a boundary; the test finds
// those rows by moving the reference's draw and thresholds by more than the rounding (never the
// GPU's), excludes them, and requires them to be rare.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <random>

#include "kernels/cpu/sample_row.h"
#include "kernels/ops.h"
#include "kernels/sampling_row.h"
#include "random_tensors.h"

using namespace tessera;
using namespace tessera::testing_util;

namespace {

const Device gpu = Device::cuda(0);
const Device host = Device::cpu();

// Relative room for the backends' weights to differ (3 ulp of f32 per weight, and so of any sum).
constexpr double kRounding = 4e-7;

// (temperature, top_k, top_p, min_p) combinations; a row takes one at random.
struct Filters {
  float temperature;
  int32_t top_k;
  float top_p, min_p;
};
const Filters kFilters[] = {
    {0.0f, 0, 1.0f, 0.0f},   {1.0f, 0, 1.0f, 0.0f},    {0.7f, 40, 1.0f, 0.0f},  {1.0f, 0, 0.9f, 0.0f},
    {1.3f, 50, 0.95f, 0.05f}, {0.5f, 0, 1.0f, 0.1f},  {1.0f, 1, 1.0f, 0.0f},   {0.8f, 0, 1e-4f, 0.0f},
    {1.0f, 1000, 0.5f, 0.0f}, {2.0f, 5, 0.99f, 0.01f}, {0.3f, 0, 0.7f, 0.02f}, {1.0f, 3, 1.0f, 0.5f},
};

// Whether the reference's token moves when its draw or its top-p / min-p thresholds move by more
// than the rounding: the backends may then disagree honestly.
bool near_a_boundary(std::span<const float> z, const SamplingRow& p, int32_t token) {
  if (sampling::greedy(p)) return false;
  cpu::SampleScratch s;
  cpu::kept_weights(z, p, s);
  const uint64_t bits = sampling::draw_bits(p), nudge = static_cast<uint64_t>(kRounding * 0x1p53);
  for (const uint64_t b : {bits > nudge ? bits - nudge : 0, std::min<uint64_t>(bits + nudge, (uint64_t(1) << 53) - 1)})
    if (cpu::draw_from(s.weights, b) != token) return true;
  for (const double f : {1 - 2 * kRounding, 1 + 2 * kRounding}) {
    SamplingRow q = p;
    q.top_p = sampling::top_p_on(p) ? static_cast<float>(std::min(1.0, p.top_p * f)) : p.top_p;
    q.min_p = static_cast<float>(p.min_p * f);
    if ((q.top_p != p.top_p || q.min_p != p.min_p) && cpu::sample_row(z, q, s) != token) return true;
  }
  return false;
}

}  // namespace

class CudaSampleRows : public ::testing::TestWithParam<std::tuple<DType, int64_t>> {};

TEST_P(CudaSampleRows, MatchesCpuExceptWithinRoundingOfABoundary) {
  TS_REQUIRE_GPU();
  const auto [dtype, vocab] = GetParam();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  std::mt19937_64 gen(seed);
  const int64_t rows = 96;
  Tensor logits = Tensor::empty({rows, vocab}, DType::F32);
  std::vector<SamplingRow> params;
  for (int64_t r = 0; r < rows; ++r) {
    // Logits of a spread between 1 and 5 (LLM rows are a few units wide).
    ops::fill_normal(logits.narrow(r, 1), seed, uint64_t(r) * vocab, 0.0f, 1.0f + float(gen() % 5));
    const Filters& f = kFilters[gen() % std::size(kFilters)];
    params.push_back(sampling_row(f.temperature, f.top_p, f.min_p, f.top_k, gen(), gen() % 100000));
  }
  params[3] = SamplingRow{};                                            // greedy
  params[7] = sampling_row(1.0f, 1.0f, 0.0f, 0, seed, 7);               // drawn, over a NaN
  float* z = logits.data_as<float>();
  z[3 * vocab + vocab / 2] = z[3 * vocab + vocab - 1] = 40.0f;  // tied maxima
  if (vocab > 8) {
    for (int64_t v = 0; v < vocab; v += 7) z[5 * vocab + v] = 2.5f;  // a large tie group
    z[6 * vocab + 1] = -INFINITY;
    z[7 * vocab + vocab - 2] = NAN;  // counts as -inf
  }
  logits = ops::cast(logits, dtype);  // rows rounded alike for both backends
  const Tensor p = sampling_params(params);
  Tensor index = Tensor::empty({rows}, DType::I32), logprob = Tensor::empty({rows}, DType::F32);
  Tensor gpu_index = Tensor::empty({rows}, DType::I32, gpu), gpu_logprob = Tensor::empty({rows}, DType::F32, gpu);
  ops::sample_rows(index, logprob, logits, p);
  const Tensor gpu_logits = logits.to(gpu), gpu_p = p.to(gpu);
  ops::sample_rows(gpu_index, gpu_logprob, gpu_logits, gpu_p);
  const std::vector<int32_t> want = index.to_vector<int32_t>(), got = gpu_index.to(host).to_vector<int32_t>();
  const std::vector<float> want_lp = logprob.to_vector<float>(), got_lp = gpu_logprob.to(host).to_vector<float>();
  const std::vector<float> z32 = host_f32(logits);
  int64_t near = 0, differ = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const std::span<const float> row(z32.data() + r * vocab, static_cast<size_t>(vocab));
    ASSERT_GE(got[r], 0);
    ASSERT_LT(got[r], vocab);
    if (near_a_boundary(row, params[r], want[r])) {
      ++near;
      continue;
    }
    if (got[r] != want[r]) {
      ++differ;
      ADD_FAILURE() << "row " << r << ": gpu " << got[r] << ", cpu " << want[r] << " (temperature "
                    << params[r].temperature << ", top_k " << params[r].top_k << ", top_p " << params[r].top_p
                    << ", min_p " << params[r].min_p << ")";
      continue;
    }
    EXPECT_NEAR(got_lp[r], want_lp[r], 1e-4 * std::max(1.0f, std::abs(want_lp[r]))) << "row " << r;
  }
  EXPECT_EQ(differ, 0);
  EXPECT_LE(near, rows / 10) << near << " of " << rows << " rows within rounding of a boundary";
  RecordProperty("rows_near_a_boundary", static_cast<int>(near));
  EXPECT_EQ(want[3], vocab / 2);
  if (vocab > 8) {
    EXPECT_NE(got[7], vocab - 2);
  }

  // The GPU's picks repeat exactly, with either way of adding histograms (integer sums), and a
  // row's pick does not depend on the other rows.
  Tensor again = Tensor::empty({rows}, DType::I32, gpu), again_lp = Tensor::empty({rows}, DType::F32, gpu);
  ops::sample_rows(again, again_lp, gpu_logits, gpu_p);
  EXPECT_EQ(again.to(host).to_vector<int32_t>(), got);
  setenv("TESSERA_SAMPLE_HISTOGRAM", "atomic", 1);
  ops::sample_rows(again, again_lp, gpu_logits, gpu_p);
  unsetenv("TESSERA_SAMPLE_HISTOGRAM");
  EXPECT_EQ(again.to(host).to_vector<int32_t>(), got) << "TESSERA_SAMPLE_HISTOGRAM=atomic";
  for (const int64_t r : {int64_t(0), rows / 2, rows - 1}) {
    Tensor one = Tensor::empty({1}, DType::I32, gpu), one_lp = Tensor::empty({1}, DType::F32, gpu);
    ops::sample_rows(one, one_lp, gpu_logits.narrow(r, 1), gpu_p.narrow(r, 1));
    EXPECT_EQ(one.to(host).to_vector<int32_t>()[0], got[r]) << "row " << r << " alone";
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaSampleRows,
                         ::testing::Combine(::testing::Values(DType::F32, DType::BF16),
                                            ::testing::Values(int64_t(1), int64_t(7), int64_t(200), int64_t(1001),
                                                              int64_t(50257), int64_t(128256))));

// A temperature-0 row is argmax_rows' pick, bit for bit.
TEST(CudaSampleRows, GreedyRowsAreArgmaxRows) {
  TS_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const int64_t rows = 9, vocab = 128256;
  const Tensor logits = random_tensor({rows, vocab}, DType::BF16, gpu, seed, 3.0f);
  Tensor a = Tensor::empty({rows}, DType::I32, gpu), a_lp = Tensor::empty({rows}, DType::F32, gpu);
  Tensor b = Tensor::empty({rows}, DType::I32, gpu), b_lp = Tensor::empty({rows}, DType::F32, gpu);
  ops::argmax_rows(a, a_lp, logits);
  ops::sample_rows(b, b_lp, logits, sampling_params(std::vector<SamplingRow>(rows)).to(gpu));
  EXPECT_EQ(b.to(host).to_vector<int32_t>(), a.to(host).to_vector<int32_t>());
  EXPECT_EQ(b_lp.to(host).to_vector<float>(), a_lp.to(host).to_vector<float>());
}
