// One logit row's sampling parameters for ops::sample_rows, and the pieces of the sampling
// definition that the CPU reference and the CUDA kernel must compute alike (kernels/ops.h
// states the whole definition).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <span>

#include "core/host_device.h"
#include "core/rng.h"
#include "core/tensor.h"

namespace tessera {

// 32 bytes, carried as 8 int32 (a row of the step's staged int32 inputs). All zeros
// (SamplingRow{}): greedy.
struct SamplingRow {
  float temperature;  // 0: the first maximum
  float top_p;        // 1: off
  float min_p;        // 0: off
  int32_t top_k;      // 0 (or >= vocab): off
  uint32_t seed_lo, seed_hi;        // the request's seed
  uint32_t counter_lo, counter_hi;  // the index of the token drawn (tokens generated before it)
};
static_assert(sizeof(SamplingRow) == 8 * sizeof(int32_t), "SamplingRow is carried as 8 int32");

inline SamplingRow sampling_row(float temperature, float top_p, float min_p, int32_t top_k, uint64_t seed,
                                uint64_t counter) {
  return {temperature, top_p, min_p, top_k, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
          static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32)};
}

// Rows as ops::sample_rows' params: a host int32 [rows.size(), 8] tensor.
Tensor sampling_params(std::span<const SamplingRow> rows);

namespace sampling {

// A NaN logit counts as -inf (never drawn).
TS_HOST_DEVICE inline float clean(float x) { return x != x ? -INFINITY : x; }

// Orders floats as integers (larger float, larger key); tokens "tie" when their keys are equal.
TS_HOST_DEVICE inline uint32_t key(float x) {
  uint32_t bits;
  memcpy(&bits, &x, sizeof bits);
  return bits & 0x80000000u ? ~bits : bits | 0x80000000u;
}

// A token's weight in fixed point, q = floor(exp((z - max) / T) * 2^40): sums of weights are
// exact integers, so mass thresholds and the draw do not depend on the order of summation.
// (w = exp(...) in f32 is the only step where the backends may differ, by an ulp or two.)
TS_HOST_DEVICE inline float weight_f32(float z, float max, float temperature) {
  const float w = expf((z - max) / temperature);
  return w == w ? w : 0.0f;  // -inf / inf (an infinite temperature) weighs nothing
}
TS_HOST_DEVICE inline uint64_t weight_fixed(float w) { return static_cast<uint64_t>(w * 1099511627776.0f); }

// Out-of-range values are read safely: a temperature that is not > 0 is greedy, top_p not < 1
// and top_k not in (0, vocab) are off, min_p is clamped to [0, 1] (NaN: 0).
TS_HOST_DEVICE inline bool greedy(const SamplingRow& p) { return !(p.temperature > 0); }
TS_HOST_DEVICE inline bool top_k_on(const SamplingRow& p, int64_t vocab) { return p.top_k > 0 && p.top_k < vocab; }
TS_HOST_DEVICE inline bool top_p_on(const SamplingRow& p) { return p.top_p < 1; }
TS_HOST_DEVICE inline float min_p_floor(const SamplingRow& p) { return p.min_p > 0 ? fminf(p.min_p, 1.0f) : 0.0f; }

// The weight top-p must reach: ceil(top_p x total), at least 1 (the best token).
TS_HOST_DEVICE inline uint64_t top_p_need(float top_p, uint64_t total) {
  const double need = ceil(static_cast<double>(top_p) * static_cast<double>(total));
  return need < 1 ? 1 : static_cast<uint64_t>(need);
}

// 53 random bits from Philox(seed, counter), the draw's u in [0, 1) as an integer.
TS_HOST_DEVICE inline uint64_t draw_bits(const SamplingRow& p) {
  const uint64_t seed = (static_cast<uint64_t>(p.seed_hi) << 32) | p.seed_lo;
  const uint64_t counter = (static_cast<uint64_t>(p.counter_hi) << 32) | p.counter_lo;
  const rng::Philox4 r = rng::philox(seed, counter);
  return (static_cast<uint64_t>(r.v[0]) << 21) ^ (r.v[1] >> 11);
}

// floor(u x total) for u = bits / 2^53: the drawn token is the first (by id) whose running
// total of kept weights exceeds it.
TS_HOST_DEVICE inline uint64_t draw_target(uint64_t bits, uint64_t total) {
#if defined(__CUDA_ARCH__)
  const uint64_t lo = bits * total, hi = __umul64hi(bits, total);
#else
  const unsigned __int128 product = static_cast<unsigned __int128>(bits) * total;
  const uint64_t lo = static_cast<uint64_t>(product), hi = static_cast<uint64_t>(product >> 64);
#endif
  return (hi << 11) | (lo >> 53);
}

}  // namespace sampling
}  // namespace tessera
