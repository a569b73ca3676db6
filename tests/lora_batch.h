// Random inputs of ops::lora_batched for the CPU and CUDA tests: N adapters of different ranks
// (one of rank 0, which leaves the projection alone), their padding past each rank NaN (never
// read), rows of every adapter and of none (-1) in a shuffled order.
#pragma once

#include <algorithm>
#include <limits>
#include <random>
#include <vector>

#include "kernels/ops.h"
#include "random_tensors.h"

namespace tessera::testing_util {

struct LoraBatch {
  Tensor y, x, a, b, ranks, scales, index;  // host, f32 (y: the values before the op)
  std::vector<int32_t> rank, row_adapter;
  std::vector<float> scale;
  int64_t rows = 0, in = 0, out = 0, max_rank = 0;
};

inline LoraBatch make_lora_batch(int64_t rows, int64_t in, int64_t out, std::vector<int32_t> ranks, uint64_t seed) {
  LoraBatch b;
  b.rows = rows;
  b.in = in;
  b.out = out;
  b.rank = ranks;
  const int64_t N = static_cast<int64_t>(ranks.size());
  b.max_rank = std::max<int64_t>(1, *std::max_element(ranks.begin(), ranks.end()));
  b.x = random_tensor({rows, in}, DType::F32, Device::cpu(), seed);
  b.y = random_tensor({rows, out}, DType::F32, Device::cpu(), seed + 1);
  b.a = random_tensor({N, b.max_rank, in}, DType::F32, Device::cpu(), seed + 2, 0.2f);
  b.b = random_tensor({N, out, b.max_rank}, DType::F32, Device::cpu(), seed + 3, 0.2f);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t r = ranks[n]; r < b.max_rank; ++r) {
      std::fill_n(b.a.data_as<float>() + (n * b.max_rank + r) * in, in, nan);
      for (int64_t o = 0; o < out; ++o) b.b.data_as<float>()[(n * out + o) * b.max_rank + r] = nan;
    }
  }
  std::mt19937_64 gen(seed);
  for (int64_t n = 0; n < N; ++n) b.scale.push_back(0.25f + 0.5f * static_cast<float>(n + 1));
  // Adapters 0, 1, ..., N - 1, then none (-1), and again: a one-row batch still has an adapter.
  for (int64_t t = 0; t < rows; ++t) b.row_adapter.push_back(static_cast<int32_t>((t + 1) % (N + 1)) - 1);
  std::shuffle(b.row_adapter.begin(), b.row_adapter.end(), gen);
  b.ranks = Tensor::from_vector(ranks, {N}, DType::I32);
  b.scales = Tensor::from_vector(b.scale, {N}, DType::F32);
  b.index = Tensor::from_vector(b.row_adapter, {rows}, DType::I32);
  return b;
}

}  // namespace tessera::testing_util
