#include "kernels/quant_math.h"

#include <algorithm>
#include <vector>

namespace tessera::quant_math {

namespace {

constexpr float kNf4[16] = {-1.0f,
                            -0.6961928009986877f,
                            -0.5250730514526367f,
                            -0.39491748809814453f,
                            -0.28444138169288635f,
                            -0.18477343022823334f,
                            -0.09105003625154495f,
                            0.0f,
                            0.07958029955625534f,
                            0.16093020141124725f,
                            0.24611230194568634f,
                            0.33791524171829224f,
                            0.44070982933044434f,
                            0.5626170039176941f,
                            0.7229568362236023f,
                            1.0f};

// torch.linspace(start, end, steps) in fp32: start + step * i for the first half and
// end - step * (steps - 1 - i) for the rest, each one fused multiply-add (one rounding).
std::vector<float> linspace_f32(float start, float end, int steps) {
  const float step = (end - start) / float(steps - 1);
  std::vector<float> out(steps);
  for (int i = 0; i < steps; ++i)
    out[i] = i < steps / 2 ? std::fma(step, float(i), start) : std::fma(-step, float(steps - 1 - i), end);
  return out;
}

// create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): for exponent i = 0..6 the
// midpoints of 2^i + 1 linear boundaries in [0.1, 1], times 10^(i - 6), with both signs; then 0
// and 1; sorted. Reproduces all 256 values bitsandbytes ships (tests/data/quant pins them).
std::vector<float> dynamic_map() {
  constexpr double kPowers[7] = {1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0};
  std::vector<float> data;
  for (int i = 0; i < 7; ++i) {
    const std::vector<float> boundaries = linspace_f32(0.1f, 1.0f, (1 << i) + 1);
    const float scale = float(kPowers[i]);
    for (size_t j = 0; j + 1 < boundaries.size(); ++j) {
      const float mean = (boundaries[j] + boundaries[j + 1]) / 2.0f;
      data.push_back(scale * mean);
      data.push_back(-scale * mean);
    }
  }
  data.push_back(0.0f);
  data.push_back(1.0f);
  std::sort(data.begin(), data.end());
  return data;
}

Nf4Tables build_tables() {
  Nf4Tables t{};
  std::copy(std::begin(kNf4), std::end(kNf4), t.nf4);
  for (int i = 0; i < 15; ++i) t.thresholds[i] = float((double(kNf4[i]) + double(kNf4[i + 1])) / 2.0);
  const std::vector<float> map = dynamic_map();
  std::copy(map.begin(), map.end(), t.dynamic);
  return t;
}

}  // namespace

const Nf4Tables& nf4_tables() {
  static const Nf4Tables tables = build_tables();
  return tables;
}

}  // namespace tessera::quant_math
