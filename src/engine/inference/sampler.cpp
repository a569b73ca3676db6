#include "engine/inference/sampler.h"

#include <algorithm>
#include <climits>
#include <cmath>

#include "core/error.h"
#include "kernels/cpu/sample_row.h"

namespace tessera::inference {

namespace {

bool has_penalties(const SamplingParams& p) {
  return p.repetition_penalty != 1.0 || p.presence_penalty != 0.0 || p.frequency_penalty != 0.0;
}

// Buffers of one host thread, reused from row to row (a 128K vocabulary's row allocates nothing
// once they have grown).
struct HostScratch {
  std::vector<float> z;
  std::vector<int32_t> counts, order;
  cpu::SampleScratch sample;
};

HostScratch& scratch() {
  thread_local HostScratch s;
  return s;
}

// The logits the filters see: the row itself, or a copy in s.z with the penalties applied (f32).
std::span<const float> penalized(std::span<const float> logits, const SamplingParams& p,
                                 std::span<const int32_t> prompt, std::span<const int32_t> generated, HostScratch& s) {
  if (!has_penalties(p)) return logits;
  const int64_t V = static_cast<int64_t>(logits.size());
  s.z.assign(logits.begin(), logits.end());
  if (p.repetition_penalty != 1.0) {
    const float r = static_cast<float>(p.repetition_penalty);
    s.counts.assign(V, 0);
    for (auto ids : {prompt, generated})
      for (int32_t t : ids)
        if (t >= 0 && t < V && !s.counts[t]) {
          s.counts[t] = 1;
          s.z[t] = s.z[t] > 0 ? s.z[t] / r : s.z[t] * r;
        }
  }
  if (p.presence_penalty != 0.0 || p.frequency_penalty != 0.0) {
    s.counts.assign(V, 0);
    for (int32_t t : generated)
      if (t >= 0 && t < V) ++s.counts[t];
    for (int32_t t : generated)
      if (t >= 0 && t < V && s.counts[t] > 0) {
        s.z[t] -= static_cast<float>(p.frequency_penalty * s.counts[t] + p.presence_penalty);
        s.counts[t] = 0;  // once per token
      }
  }
  return s.z;
}

}  // namespace

void check_sampling(const SamplingParams& p) {
  TS_CHECK(std::isfinite(p.temperature) && p.temperature >= 0, "temperature must be >= 0, got {}", p.temperature);
  TS_CHECK(p.top_p > 0 && p.top_p <= 1, "top_p must be in (0, 1], got {}", p.top_p);
  TS_CHECK(p.top_k >= 0, "top_k must be >= 0 (0: off), got {}", p.top_k);
  TS_CHECK(p.min_p >= 0 && p.min_p <= 1, "min_p must be in [0, 1], got {}", p.min_p);
  TS_CHECK(std::isfinite(p.repetition_penalty) && p.repetition_penalty > 0,
           "repetition_penalty must be > 0, got {}", p.repetition_penalty);
  TS_CHECK(std::isfinite(p.presence_penalty) && std::abs(p.presence_penalty) <= 2,
           "presence_penalty must be in [-2, 2], got {}", p.presence_penalty);
  TS_CHECK(std::isfinite(p.frequency_penalty) && std::abs(p.frequency_penalty) <= 2,
           "frequency_penalty must be in [-2, 2], got {}", p.frequency_penalty);
}

SamplingRow sampling_row(const SamplingParams& p, uint64_t seed, uint64_t index) {
  return tessera::sampling_row(static_cast<float>(p.temperature), static_cast<float>(p.top_p),
                               static_cast<float>(p.min_p), static_cast<int32_t>(std::min<int64_t>(p.top_k, INT32_MAX)),
                               seed, index);
}

bool sample_on_device(const SamplingParams& p, int64_t top_logprobs) { return !has_penalties(p) && top_logprobs <= 0; }

std::vector<double> sampling_distribution(std::span<const float> logits, const SamplingParams& p,
                                          std::span<const int32_t> prompt, std::span<const int32_t> generated) {
  TS_CHECK(!logits.empty(), "sampling: an empty row of logits");
  HostScratch& s = scratch();
  const std::span<const float> z = penalized(logits, p, prompt, generated, s);
  cpu::kept_weights(z, sampling_row(p, 0, 0), s.sample);
  double total = 0;
  for (uint64_t q : s.sample.weights) total += double(q);
  std::vector<double> probs(z.size());
  for (size_t t = 0; t < z.size(); ++t) probs[t] = double(s.sample.weights[t]) / total;
  return probs;
}

Sample sample_token(std::span<const float> logits, const SamplingParams& p, uint64_t seed, uint64_t index,
                    std::span<const int32_t> prompt, std::span<const int32_t> generated, int64_t top_n) {
  TS_CHECK(!logits.empty(), "sampling: an empty row of logits");
  HostScratch& s = scratch();
  Sample out;
  out.token = cpu::sample_row(penalized(logits, p, prompt, generated, s), sampling_row(p, seed, index), s.sample);
  const double lse = cpu::log_sum_exp(logits);
  out.logprob = double(logits[out.token]) - lse;
  if (top_n > 0) {
    const int64_t n = std::min<int64_t>(top_n, static_cast<int64_t>(logits.size()));
    s.order.resize(logits.size());
    for (size_t t = 0; t < logits.size(); ++t) s.order[t] = static_cast<int32_t>(t);
    std::partial_sort(s.order.begin(), s.order.begin() + n, s.order.end(), [&](int32_t a, int32_t b) {
      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
    for (int64_t i = 0; i < n; ++i) out.top.emplace_back(s.order[i], double(logits[s.order[i]]) - lse);
  }
  return out;
}

}  // namespace tessera::inference
