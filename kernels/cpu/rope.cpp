// CPU reference for rotary embeddings (HF rotate_half convention), in place.
#include <cmath>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/f32_view.h"

namespace tessera::cpu {

// Pair (x1, x2) = (x[i], x[i + D/2]) becomes (x1 cos - x2 sin, x2 cos + x1 sin), each product and
// sum rounded to x's dtype as HF's `q * cos + rotate_half(q) * sin` is.
namespace {

void rope_one(const Tensor& x, const Tensor& positions, const Tensor& inv_freq, float attention_scaling, float sign) {
  const int64_t tokens = x.size(0), heads = x.size(1), half = x.size(2) / 2;
  const DType dt = x.dtype();
  F32Out data(x, true);
  const int32_t* pos = positions.data_as<int32_t>();
  const float* freq = inv_freq.data_as<float>();
#pragma omp parallel for if (x.numel() > (1 << 16))
  for (int64_t n = 0; n < tokens; ++n) {
    std::vector<float> cos_n(half), sin_n(half);
    for (int64_t i = 0; i < half; ++i) {
      const float angle = static_cast<float>(pos[n]) * freq[i];
      cos_n[i] = round_to(dt, std::cos(angle) * attention_scaling);
      sin_n[i] = sign * round_to(dt, std::sin(angle) * attention_scaling);
    }
    for (int64_t h = 0; h < heads; ++h) {
      float* row = data.data() + (n * heads + h) * 2 * half;
      for (int64_t i = 0; i < half; ++i) {
        const float x1 = row[i], x2 = row[i + half];
        row[i] = round_to(dt, round_to(dt, x1 * cos_n[i]) - round_to(dt, x2 * sin_n[i]));
        row[i + half] = round_to(dt, round_to(dt, x2 * cos_n[i]) + round_to(dt, x1 * sin_n[i]));
      }
    }
  }
  data.commit();
}

}  // namespace

void rope(const Tensor& x, const Tensor& y, const Tensor& positions, const Tensor& inv_freq, float attention_scaling,
          float sign) {
  rope_one(x, positions, inv_freq, attention_scaling, sign);
  if (y.defined()) rope_one(y, positions, inv_freq, attention_scaling, sign);
}

}  // namespace tessera::cpu
