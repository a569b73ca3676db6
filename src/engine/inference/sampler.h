// The next token from one row of fp32 logits. In order: repetition penalty (HF: logits of tokens
// seen in the prompt or output divided by it when positive, multiplied when negative), presence
// and frequency penalties over the output (OpenAI: logit -= frequency x count + presence x
// [count > 0]), then greedy (temperature 0) or temperature, top-k, top-p, min-p and a draw, all as
// ops::sample_rows defines them (kernels/ops.h). The draw's random bits are Philox(seed, index of
// the generated token): a request's tokens depend on its seed and logits only, never on the rest
// of the batch. Rows without penalties or top logprobs are sampled on the model's device
// (sample_on_device); the others here, on the host, by the same definition.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "engine/inference/generator.h"
#include "kernels/sampling_row.h"

namespace tessera::inference {

// A field out of range: the message names it ("temperature must be >= 0, got -1").
void check_sampling(const SamplingParams& params);

struct Sample {
  int32_t token = 0;
  double logprob = 0;  // log-softmax of the raw logits (before penalties and filters) at the token
  std::vector<std::pair<int32_t, double>> top;  // the top_n most likely tokens by the raw logits, best first
};

// The probabilities a draw uses after every filter (0 for filtered tokens; a one-hot row when
// greedy), for tests.
std::vector<double> sampling_distribution(std::span<const float> logits, const SamplingParams& params,
                                          std::span<const int32_t> prompt, std::span<const int32_t> generated);

// A row's parameters for ops::sample_rows (top_k beyond int32 is off either way).
SamplingRow sampling_row(const SamplingParams& params, uint64_t seed, uint64_t index);

// True when nothing but the filters and the draw are asked for (no penalties, top_logprobs <= 0):
// the device picks the token (ops::sample_rows) and the row's logits need not come back.
bool sample_on_device(const SamplingParams& params, int64_t top_logprobs);

// Picks the next token. seed: the request's; index: how many tokens it has generated before this one.
Sample sample_token(std::span<const float> logits, const SamplingParams& params, uint64_t seed, uint64_t index,
                    std::span<const int32_t> prompt, std::span<const int32_t> generated, int64_t top_n = 0);

}  // namespace tessera::inference
