// The packed step inputs (model/step_batch.h) and a decode step padded to its CUDA graph bucket:
// the padding rows are inert, and a padded step gives the logits and picks of the unpadded one.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "../../inference_models.h"
#include "kernels/cpu/sample_row.h"
#include "model/kv_cache.h"
#include "model/step_batch.h"

using namespace tessera;
using namespace tessera::testing_util;

TEST(StepBatch, BucketsAndWidths) {
  EXPECT_EQ(decode_bucket(1), 1);
  EXPECT_EQ(decode_bucket(3), 4);
  EXPECT_EQ(decode_bucket(16), 16);
  EXPECT_EQ(decode_bucket(17), 32);
  EXPECT_EQ(decode_bucket(256), 256);
  EXPECT_EQ(decode_bucket(257), 384);
  EXPECT_EQ(decode_width(1), 16);
  EXPECT_EQ(decode_width(17), 32);
  EXPECT_EQ(decode_width(129), 256);
  EXPECT_THROW(decode_bucket(0), Error);
}

TEST(StepBatch, PacksEveryFieldAndPadsInertRows) {
  const BlockTable a{5, 2}, b{7};
  StepInput in;
  in.ids = {11, 12};
  in.seq = {0, 1};
  in.pos = {5, 3};  // a: block 1 (id 2) offset 1; b: block 0 (id 7) offset 3
  in.block_tables = {&a, &b};
  in.logit_rows = {0, 1};
  in.sampling = {sampling_row(0.7f, 0.9f, 0.05f, 40, (uint64_t(3) << 32) | 5, 17), SamplingRow{}};
  ASSERT_TRUE(is_decode_step(in));
  const StepLayout L = padded_decode_layout(decode_bucket(2) * 2, 4);  // 4 tokens, 2 of them padding
  std::vector<int32_t> buf(L.size(), 99);
  pack_step(in, L, /*block_size=*/4, /*vocab=*/100, buf.data());
  auto field = [&](int64_t at, int64_t n) { return std::vector<int32_t>(buf.begin() + at, buf.begin() + at + n); };
  EXPECT_EQ(field(L.ids(), 4), (std::vector<int32_t>{11, 12, 0, 0}));
  EXPECT_EQ(field(L.pos(), 4), (std::vector<int32_t>{5, 3, 0, 0}));
  EXPECT_EQ(field(L.seq(), 4), (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(field(L.slots(), 4), (std::vector<int32_t>{2 * 4 + 1, 7 * 4 + 3, -1, -1}));
  EXPECT_EQ(field(L.logit_rows(), 4), (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(field(L.tables(), 16), (std::vector<int32_t>{5, 2, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}));
  std::vector<SamplingRow> sampling(4);
  std::memcpy(sampling.data(), buf.data() + L.sampling(), sizeof(SamplingRow) * 4);
  EXPECT_EQ(sampling[0].temperature, 0.7f);
  EXPECT_EQ(sampling[0].top_k, 40);
  EXPECT_EQ(sampling[0].seed_hi, 3u);
  EXPECT_EQ(sampling[0].counter_lo, 17u);
  for (int r = 1; r < 4; ++r) EXPECT_EQ(sampling[r].temperature, 0.0f) << "row " << r << " is greedy";

  StepInput prefill = in;
  prefill.seq = {0, 0};
  prefill.pos = {4, 5};
  prefill.block_tables = {&a};
  prefill.logit_rows = {1};
  prefill.sampling.clear();
  EXPECT_FALSE(is_decode_step(prefill));
  const StepLayout E = exact_layout(prefill);
  EXPECT_EQ(E, (StepLayout{2, 1, 1, 2}));

  StepInput bad = in;
  bad.pos = {9, 3};  // a has 2 blocks of 4: no block for position 9
  EXPECT_THROW(pack_step(bad, L, 4, 100, buf.data()), Error);
  bad = in;
  bad.ids = {11, 100};
  EXPECT_THROW(pack_step(bad, L, 4, 100, buf.data()), Error);
  bad = in;
  bad.sampling.pop_back();  // one per logit row
  EXPECT_THROW(pack_step(bad, L, 4, 100, buf.data()), Error);
  EXPECT_THROW(pack_step(in, StepLayout{2, 2, 2, 1}, 4, 100, buf.data()), Error);  // a needs 2 columns
}

namespace {

struct Decoded {
  std::vector<std::vector<float>> logits;  // per step, per sequence: [V] each, concatenated
  std::vector<std::vector<int32_t>> picks;
  std::vector<std::vector<float>> logprobs;
};

// Sampling parameters of sequence s at decode step `step` (the third greedy).
SamplingRow sampled_row(int s, int64_t step) {
  return s == 2 ? SamplingRow{} : sampling_row(0.9f, 0.95f, 0.0f, s == 0 ? 20 : 0, 1000 + s, uint64_t(step));
}

// Prefills three prompts of different lengths one by one, then decodes them together for
// `steps` steps through run(), greedily or (sampled) by sampled_row; `full` says which sequences
// get their logits back.
Decoded decode_three(InferenceModel& model, const std::vector<uint8_t>& full, int64_t steps, bool sampled = false) {
  const ModelConfig& c = model.config();
  const int64_t V = c.vocab_size;
  KvCache cache(c, 32, 4, model.cache_dtype(), model.device());
  const std::vector<std::vector<int32_t>> prompts{tokens(5, 1, V), tokens(9, 2, V), tokens(2, 3, V)};
  std::vector<BlockTable> tables(3);
  std::vector<int32_t> next(3), length(3);
  for (int s = 0; s < 3; ++s) {
    const int64_t n = static_cast<int64_t>(prompts[s].size());
    EXPECT_TRUE(cache.reserve(tables[s], n));
    StepInput in;
    for (int64_t p = 0; p < n; ++p) in.ids.push_back(prompts[s][p]), in.seq.push_back(0), in.pos.push_back(int32_t(p));
    in.block_tables = {&tables[s]};
    in.logit_rows = {n - 1};
    next[s] = model.run(in, cache).token[0];
    length[s] = static_cast<int32_t>(n);
  }
  Decoded d;
  for (int64_t step = 0; step < steps; ++step) {
    StepInput in;
    for (int s = 0; s < 3; ++s) {
      EXPECT_TRUE(cache.reserve(tables[s], length[s] + 1));
      in.ids.push_back(next[s]);
      in.seq.push_back(s);
      in.pos.push_back(length[s]);
      in.block_tables.push_back(&tables[s]);
      in.logit_rows.push_back(s);
      if (sampled) in.sampling.push_back(sampled_row(s, step));
    }
    in.full_logits = full;
    const StepOutput out = model.run(in, cache);
    std::vector<float> rows;
    for (int s = 0; s < 3; ++s) {
      if (out.logits_row[s] >= 0) {
        const float* r = out.logits.data_as<float>() + out.logits_row[s] * V;
        rows.insert(rows.end(), r, r + V);
      }
      next[s] = out.token[s];
      ++length[s];
    }
    d.logits.push_back(rows);
    d.picks.push_back(out.token);
    d.logprobs.push_back(out.logprob);
  }
  return d;
}

}  // namespace

// A decode step padded to its bucket (3 sequences -> 4, tables 16 blocks wide) gives exactly the
// unpadded step's logits and greedy picks; the picks are the argmax of the logits and the logprob
// their log-softmax; only the rows asked for in full come back in full.
TEST(StepBatch, PaddedDecodeEqualsUnpadded) {
  CpuModel m = cpu_model("llama_gqa");
  auto padded = std::make_shared<InferenceModel>(m.loaded.config, std::make_shared<OwnedParams>(m.loaded.params),
                                                 Device::cpu(), DType::F32, InferenceOptions{.pad_decode = true});
  const int64_t V = m.loaded.config.vocab_size;
  const Decoded plain = decode_three(*m.model, {1, 1, 1}, 6);
  const Decoded pad = decode_three(*padded, {1, 1, 1}, 6);
  const Decoded picks_only = decode_three(*padded, {0, 1, 0}, 6);
  ASSERT_EQ(plain.logits.size(), 6u);
  for (size_t step = 0; step < 6; ++step) {
    SCOPED_TRACE(::testing::Message() << "step " << step);
    EXPECT_EQ(pad.logits[step], plain.logits[step]);
    EXPECT_EQ(pad.picks[step], plain.picks[step]);
    EXPECT_EQ(picks_only.picks[step], plain.picks[step]);
    ASSERT_EQ(picks_only.logits[step].size(), size_t(V)) << "only the second sequence's row comes back";
    EXPECT_EQ(picks_only.logits[step], std::vector<float>(plain.logits[step].begin() + V, plain.logits[step].begin() + 2 * V));
    for (int s = 0; s < 3; ++s) {
      const float* row = plain.logits[step].data() + s * V;
      const int32_t best = static_cast<int32_t>(std::max_element(row, row + V) - row);
      double sum = 0;
      for (int64_t v = 0; v < V; ++v) sum += std::exp(double(row[v]) - row[best]);
      EXPECT_EQ(plain.picks[step][s], best);
      EXPECT_NEAR(plain.logprobs[step][s], -std::log(sum), 1e-5);
    }
  }
}

// Rows with sampling parameters are drawn on the model's device by ops::sample_rows: the picks
// are the reference's draws from the very logits of the step, padded or not.
TEST(StepBatch, SampledRowsAreDrawnFromTheirLogits) {
  CpuModel m = cpu_model("llama_gqa");
  auto padded = std::make_shared<InferenceModel>(m.loaded.config, std::make_shared<OwnedParams>(m.loaded.params),
                                                 Device::cpu(), DType::F32, InferenceOptions{.pad_decode = true});
  const int64_t V = m.loaded.config.vocab_size;
  const Decoded plain = decode_three(*m.model, {1, 1, 1}, 6, true);
  const Decoded pad = decode_three(*padded, {1, 1, 1}, 6, true);
  cpu::SampleScratch scratch;
  int drawn_not_best = 0;
  for (size_t step = 0; step < 6; ++step) {
    EXPECT_EQ(pad.picks[step], plain.picks[step]) << "step " << step;
    for (int s = 0; s < 3; ++s) {
      const std::span<const float> row(plain.logits[step].data() + s * V, static_cast<size_t>(V));
      EXPECT_EQ(plain.picks[step][s], cpu::sample_row(row, sampled_row(s, int64_t(step)), scratch));
      EXPECT_NEAR(plain.logprobs[step][s], row[plain.picks[step][s]] - cpu::log_sum_exp(row), 1e-5);
      drawn_not_best += plain.picks[step][s] != cpu::first_max(row);
    }
  }
  EXPECT_GT(drawn_not_best, 0) << "the sampled rows should not all be greedy picks";
}
