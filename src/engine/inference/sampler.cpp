#include "engine/inference/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_map>

#include "core/error.h"
#include "core/rng.h"

namespace tessera::inference {

namespace {

// Logits after the penalties, in double.
std::vector<double> penalized(std::span<const float> logits, const SamplingParams& p, std::span<const int32_t> prompt,
                              std::span<const int32_t> generated) {
  std::vector<double> z(logits.begin(), logits.end());
  const int64_t V = static_cast<int64_t>(z.size());
  if (p.repetition_penalty != 1.0) {
    std::vector<bool> seen(V, false);
    for (auto ids : {prompt, generated})
      for (int32_t t : ids)
        if (t >= 0 && t < V) seen[t] = true;
    for (int64_t t = 0; t < V; ++t)
      if (seen[t]) z[t] = z[t] > 0 ? z[t] / p.repetition_penalty : z[t] * p.repetition_penalty;
  }
  if (p.presence_penalty != 0.0 || p.frequency_penalty != 0.0) {
    std::unordered_map<int32_t, int64_t> counts;
    for (int32_t t : generated) ++counts[t];
    for (const auto& [t, n] : counts)
      if (t >= 0 && t < V) z[t] -= p.frequency_penalty * static_cast<double>(n) + p.presence_penalty;
  }
  return z;
}

int32_t argmax(const std::vector<double>& z) {
  return static_cast<int32_t>(std::max_element(z.begin(), z.end()) - z.begin());  // first of ties
}

std::vector<double> log_softmax(std::span<const float> logits) {
  const double m = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float v : logits) sum += std::exp(double(v) - m);
  const double lse = m + std::log(sum);
  std::vector<double> out(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) out[i] = double(logits[i]) - lse;
  return out;
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

bool greedy_on_device(const SamplingParams& p, int64_t top_logprobs) {
  return p.temperature == 0 && p.repetition_penalty == 1.0 && p.presence_penalty == 0.0 &&
         p.frequency_penalty == 0.0 && top_logprobs <= 0;
}

std::vector<double> sampling_distribution(std::span<const float> logits, const SamplingParams& p,
                                          std::span<const int32_t> prompt, std::span<const int32_t> generated) {
  TS_CHECK(!logits.empty(), "sampling: an empty row of logits");
  std::vector<double> z = penalized(logits, p, prompt, generated);
  const int64_t V = static_cast<int64_t>(z.size());
  std::vector<double> probs(V, 0.0);
  if (p.temperature == 0) {
    probs[argmax(z)] = 1.0;
    return probs;
  }
  const double m = *std::max_element(z.begin(), z.end());
  for (int64_t t = 0; t < V; ++t) probs[t] = std::exp((z[t] - m) / p.temperature);
  // Tokens by probability, best first (ties: lower id first), sorted only as far as top-k and
  // top-p look: a vocabulary of 128K sorted whole for every sampled row is most of the host's step.
  const auto before = [&](int32_t a, int32_t b) { return probs[a] > probs[b] || (probs[a] == probs[b] && a < b); };
  std::vector<int32_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  int64_t sorted = 0;  // order[0, sorted) is in place
  const auto sort_prefix = [&](int64_t n) {
    n = std::min(n, V);
    if (n <= sorted) return;
    std::partial_sort(order.begin() + sorted, order.begin() + n, order.end(), before);
    sorted = n;
  };
  int64_t keep = V;
  if (p.top_k > 0) keep = std::min<int64_t>(keep, p.top_k);
  if (p.top_p < 1) {
    double total = 0;
    if (keep < V) {
      sort_prefix(keep);
      for (int64_t i = 0; i < keep; ++i) total += probs[order[i]];
    } else {
      total = std::accumulate(probs.begin(), probs.end(), 0.0);
    }
    double mass = 0;
    for (int64_t i = 0; i < keep; ++i) {
      if (i == sorted) sort_prefix(std::max<int64_t>(256, 4 * sorted));
      mass += probs[order[i]];
      if (mass >= p.top_p * total) {
        keep = i + 1;
        break;
      }
    }
  }
  if (keep < V) {
    sort_prefix(keep);
    std::vector<double> kept(V, 0.0);
    for (int64_t i = 0; i < keep; ++i) kept[order[i]] = probs[order[i]];
    probs.swap(kept);
  }
  if (p.min_p > 0) {
    sort_prefix(1);
    const double floor = p.min_p * probs[order[0]];
    for (int64_t t = 0; t < V; ++t)
      if (t != order[0] && probs[t] < floor) probs[t] = 0;
  }
  const double total = std::accumulate(probs.begin(), probs.end(), 0.0);
  for (double& v : probs) v /= total;
  return probs;
}

Sample sample_token(std::span<const float> logits, const SamplingParams& p, uint64_t seed, uint64_t index,
                    std::span<const int32_t> prompt, std::span<const int32_t> generated, int64_t top_n) {
  const std::vector<double> probs = sampling_distribution(logits, p, prompt, generated);
  Sample s;
  if (p.temperature == 0) {
    s.token = static_cast<int32_t>(std::max_element(probs.begin(), probs.end()) - probs.begin());
  } else {
    // 53 random bits from the counter (seed, index): u in [0, 1).
    const rng::Philox4 r = rng::philox(seed, index);
    const double u = static_cast<double>((static_cast<uint64_t>(r.v[0]) << 21) ^ (r.v[1] >> 11)) * 0x1p-53;
    double acc = 0;
    s.token = -1;
    for (size_t t = 0; t < probs.size(); ++t) {
      if (probs[t] == 0) continue;
      acc += probs[t];
      s.token = static_cast<int32_t>(t);
      if (u < acc) break;
    }
  }
  const std::vector<double> lp = log_softmax(logits);
  s.logprob = lp[s.token];
  if (top_n > 0) {
    std::vector<int32_t> order(lp.size());
    std::iota(order.begin(), order.end(), 0);
    const int64_t n = std::min<int64_t>(top_n, static_cast<int64_t>(order.size()));
    std::partial_sort(order.begin(), order.begin() + n, order.end(),
                      [&](int32_t a, int32_t b) { return lp[a] > lp[b] || (lp[a] == lp[b] && a < b); });
    for (int64_t i = 0; i < n; ++i) s.top.emplace_back(order[i], lp[order[i]]);
  }
  return s;
}

}  // namespace tessera::inference
