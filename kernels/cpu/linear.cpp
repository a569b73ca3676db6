// CPU reference for the Linear and LoRA ops: column sums, counter-based dropout.
#include <vector>

#include "core/rng.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/f32_view.h"

namespace tessera::cpu {

void column_sum(const Tensor& out, const Tensor& in, bool accumulate) {
  const int64_t cols = in.size(-1), rows = in.numel() / cols;
  F32In x(in);
  F32Out z(out, accumulate);
  const float* px = x.data();
  float* pz = z.data();
  std::vector<double> sums(static_cast<size_t>(cols), 0.0);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) sums[j] += px[i * cols + j];
  for (int64_t j = 0; j < cols; ++j) pz[j] = static_cast<float>(accumulate ? pz[j] + sums[j] : sums[j]);
  z.commit();
}

void dropout(const Tensor& out, const Tensor& in, float p, uint64_t key, uint64_t first) {
  F32In x(in);
  F32Out z(out, false);
  const float* px = x.data();
  float* pz = z.data();
  const float keep_scale = 1.0f / (1.0f - p);
  const int64_t n = in.numel();
#pragma omp parallel for if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) pz[i] = rng::uniform(key, first + i) >= p ? px[i] * keep_scale : 0.0f;
  z.commit();
}

}  // namespace tessera::cpu
