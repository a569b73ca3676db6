// CPU reference for sample_rows (the definition is in kernels/ops.h): keys of the logits, top-k by
// nth_element over them, top-p by walking the top-k's tokens sorted by key, then the draw by a
// running sum in token order.
#include <algorithm>
#include <cmath>
#include <functional>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/f32_view.h"
#include "kernels/cpu/sample_row.h"

namespace tessera::cpu {

int32_t first_max(std::span<const float> z) {
  size_t best = 0;
  for (size_t v = 1; v < z.size(); ++v)
    if (sampling::clean(z[v]) > sampling::clean(z[best])) best = v;
  return static_cast<int32_t>(best);
}

void kept_weights(std::span<const float> z, const SamplingRow& p, SampleScratch& s) {
  const int64_t V = static_cast<int64_t>(z.size());
  const int32_t best = first_max(z);
  const float m = sampling::clean(z[best]);
  s.weights.assign(V, 0);
  if (sampling::greedy(p) || !std::isfinite(m)) {
    s.weights[best] = 1;
    return;
  }
  uint32_t floor_key = 0;  // kept: key >= floor_key
  if (sampling::top_k_on(p, V)) {
    s.keys.resize(V);
    for (int64_t v = 0; v < V; ++v) s.keys[v] = sampling::key(sampling::clean(z[v]));
    std::nth_element(s.keys.begin(), s.keys.begin() + (p.top_k - 1), s.keys.end(), std::greater<>());
    floor_key = s.keys[p.top_k - 1];
  }
  if (sampling::top_p_on(p)) {
    s.by_key.clear();
    uint64_t total = 0;
    for (int64_t v = 0; v < V; ++v) {
      const float x = sampling::clean(z[v]);
      const uint32_t k = sampling::key(x);
      if (k < floor_key) continue;
      const uint64_t q = sampling::weight_fixed(sampling::weight_f32(x, m, p.temperature));
      s.by_key.emplace_back(k, q);
      total += q;
    }
    std::sort(s.by_key.begin(), s.by_key.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    const uint64_t need = sampling::top_p_need(p.top_p, total);
    uint64_t mass = 0;
    for (size_t i = 0; i < s.by_key.size(); ++i) {
      mass += s.by_key[i].second;
      const bool group_ends = i + 1 == s.by_key.size() || s.by_key[i + 1].first != s.by_key[i].first;
      if (group_ends && mass >= need) {
        floor_key = std::max(floor_key, s.by_key[i].first);
        break;
      }
    }
  }
  const float min_w = sampling::min_p_floor(p);
  for (int64_t v = 0; v < V; ++v) {
    const float x = sampling::clean(z[v]);
    const float w = sampling::weight_f32(x, m, p.temperature);
    if (sampling::key(x) >= floor_key && w >= min_w) s.weights[v] = sampling::weight_fixed(w);
  }
}

int32_t draw_from(std::span<const uint64_t> weights, uint64_t bits) {
  uint64_t total = 0;
  for (uint64_t q : weights) total += q;
  const uint64_t target = sampling::draw_target(bits, total);
  uint64_t sum = 0;
  for (size_t v = 0; v < weights.size(); ++v) {
    sum += weights[v];
    if (sum > target) return static_cast<int32_t>(v);
  }
  return 0;  // unreachable: target < total, and a kept row weighs > 0
}

int32_t sample_row(std::span<const float> z, const SamplingRow& p, SampleScratch& s) {
  const int32_t best = first_max(z);
  if (sampling::greedy(p) || !std::isfinite(sampling::clean(z[best]))) return best;
  kept_weights(z, p, s);
  return draw_from(s.weights, sampling::draw_bits(p));
}

double log_sum_exp(std::span<const float> z) {
  const double m = sampling::clean(z[first_max(z)]);
  double sum = 0;
  for (float v : z) sum += std::exp(double(sampling::clean(v)) - m);
  return m + std::log(sum);
}

void sample_rows(const Tensor& index, const Tensor& logprob, const Tensor& logits, const Tensor& params) {
  const int64_t rows = logits.size(0), vocab = logits.size(1);
  const F32In z(logits);
  const auto* p = reinterpret_cast<const SamplingRow*>(params.data_as<int32_t>());
  int32_t* picked = index.data_as<int32_t>();
  float* lp = logprob.data_as<float>();
  SampleScratch scratch;
  for (int64_t r = 0; r < rows; ++r) {
    const std::span<const float> row(z.data() + r * vocab, static_cast<size_t>(vocab));
    if (sampling::greedy(p[r]) || !std::isfinite(sampling::clean(row[first_max(row)]))) continue;  // argmax_rows'
    picked[r] = sample_row(row, p[r], scratch);
    lp[r] = static_cast<float>(double(sampling::clean(row[picked[r]])) - log_sum_exp(row));
  }
}

}  // namespace tessera::cpu
