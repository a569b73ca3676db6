#include "model/model_config_rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace tessera {

namespace {

// theta^(-2i/d) for i < d/2: the unscaled frequencies.
std::vector<double> default_inv_freq(const ModelConfig& c) {
  const int64_t dim = c.head_dim;
  std::vector<double> f(static_cast<size_t>(dim / 2));
  for (size_t i = 0; i < f.size(); ++i) f[i] = 1.0 / std::pow(c.rope_theta, static_cast<double>(2 * i) / dim);
  return f;
}

// Llama 3.1: long wavelengths (beyond original / low_freq_factor) are slowed down by `factor`,
// short ones (below original / high_freq_factor) kept, and the band between interpolated.
void apply_llama3(const RopeScaling& s, std::vector<double>& f) {
  const double old_len = static_cast<double>(*s.original_max_position_embeddings);
  const double low_freq_wavelen = old_len / s.low_freq_factor;
  const double high_freq_wavelen = old_len / s.high_freq_factor;
  for (double& x : f) {
    const double wavelen = 2 * std::numbers::pi / x;
    if (wavelen > low_freq_wavelen) {
      x /= s.factor;
    } else if (wavelen >= high_freq_wavelen) {
      const double smooth = (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      x = (1 - smooth) * x / s.factor + smooth * x;
    }
  }
}

// YaRN: dimensions that rotate fewer than beta_slow times over the original context are
// interpolated (divided by factor), those rotating more than beta_fast times extrapolated
// (kept), with a linear ramp between.
void apply_yarn(const ModelConfig& c, std::vector<double>& f) {
  const RopeScaling& s = c.rope_scaling;
  const double dim = static_cast<double>(c.head_dim);
  const double base = c.rope_theta;
  const double original = static_cast<double>(s.original_max_position_embeddings.value_or(c.max_position_embeddings));
  // The dimension index at which a frequency completes `rotations` turns over `original` positions.
  auto correction_dim = [&](double rotations) {
    return dim * std::log(original / (rotations * 2 * std::numbers::pi)) / (2 * std::log(base));
  };
  double low = correction_dim(s.beta_fast);
  double high = correction_dim(s.beta_slow);
  if (s.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, dim - 1);
  if (low == high) high += 0.001;  // avoids a zero-width ramp
  for (size_t i = 0; i < f.size(); ++i) {
    const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
    f[i] = (f[i] / s.factor) * ramp + f[i] * (1 - ramp);
  }
}

double yarn_mscale(double scale, double mscale) { return scale <= 1 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0; }

}  // namespace

std::vector<float> rope_inv_freq(const ModelConfig& config) {
  std::vector<double> f = default_inv_freq(config);
  switch (config.rope_scaling.type) {
    case RopeScaling::Type::Default: break;
    case RopeScaling::Type::Linear:
      for (double& x : f) x /= config.rope_scaling.factor;  // same as dividing positions by factor
      break;
    case RopeScaling::Type::Llama3: apply_llama3(config.rope_scaling, f); break;
    case RopeScaling::Type::Yarn: apply_yarn(config, f); break;
  }
  return {f.begin(), f.end()};
}

double rope_attention_factor(const ModelConfig& config) {
  const RopeScaling& s = config.rope_scaling;
  if (s.type != RopeScaling::Type::Yarn) return 1.0;
  if (s.attention_factor) return *s.attention_factor;
  // transformers tests both for truthiness, so 0 counts as absent.
  if (s.mscale.value_or(0) != 0 && s.mscale_all_dim.value_or(0) != 0)
    return yarn_mscale(s.factor, *s.mscale) / yarn_mscale(s.factor, *s.mscale_all_dim);
  return yarn_mscale(s.factor, 1.0);
}

}  // namespace tessera
