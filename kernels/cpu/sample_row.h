// ops::sample_rows' definition for one row on the CPU (kernels/ops.h): the reference kernel's
// rows, and the host sampler's rows after their penalties (engine/inference/sampler.cpp).
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "kernels/sampling_row.h"

namespace tessera::cpu {

// Buffers reused from row to row, so that a vocabulary-sized row allocates nothing once grown.
struct SampleScratch {
  std::vector<uint32_t> keys;
  std::vector<std::pair<uint32_t, uint64_t>> by_key;  // (key, weight) of the top-k's tokens
  std::vector<uint64_t> weights;
};

// The first maximum of z (NaN counts as -inf).
int32_t first_max(std::span<const float> z);

// Each token's fixed-point weight if kept, else 0 (a greedy row: 1 at its first maximum), into
// scratch.weights.
void kept_weights(std::span<const float> z, const SamplingRow& p, SampleScratch& scratch);

// The draw over kept weights: the first token whose running sum exceeds floor(bits / 2^53 x sum).
int32_t draw_from(std::span<const uint64_t> weights, uint64_t bits);

// The row's token: kept_weights, then draw_from with Philox(seed, counter)'s bits.
int32_t sample_row(std::span<const float> z, const SamplingRow& p, SampleScratch& scratch);

// log(sum exp(z)) in double (NaN counts as -inf): a token's log-softmax is z[token] minus it.
double log_sum_exp(std::span<const float> z);

}  // namespace tessera::cpu
