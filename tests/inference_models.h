// The parity models of tests/data/hf loaded for inference on the CPU, greedy next tokens by
// repeated full forwards without a cache (run_model), the reference the engine must equal, and
// the engine's own greedy run over the paged cache (run_paged).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "engine/gguf_loader.h"
#include "engine/inference/generator.h"
#include "model/inference_model.h"
#include "model/kv_cache.h"
#include "model/transformer.h"

namespace tessera::testing_util {

inline std::string parity_model_dir(const std::string& name) { return std::string(TESSERA_TEST_DATA) + "/hf/" + name; }

inline const std::vector<std::string>& parity_model_names() {
  static const std::vector<std::string> names{"llama_gqa",       "llama3_rope",       "llama_yarn",
                                              "mistral_linear", "qwen2_bias_tied", "qwen3_qknorm_bf16"};
  return names;
}

struct CpuModel {
  LoadedModel loaded;
  std::shared_ptr<InferenceModel> model;
};

inline CpuModel cpu_model(const std::string& name) {
  CpuModel m{load_model_file(parity_model_dir(name), DType::F32, Device::cpu()), nullptr};
  m.model = std::make_shared<InferenceModel>(m.loaded.config, std::make_shared<OwnedParams>(m.loaded.params),
                                             Device::cpu(), DType::F32);
  return m;
}

// f32 logits [V] of the token after `ids`, from one full forward over them.
inline std::vector<float> full_forward_next_logits(const LoadedModel& m, std::vector<int32_t> ids) {
  if (ids.size() == 1) ids.insert(ids.begin(), ids[0]);  // run_model needs two tokens; only the last row is read
  const int64_t n = static_cast<int64_t>(ids.size());
  const TokenBatch batch = TokenBatch::causal_lm(Tensor::from_vector(ids, {1, n}, DType::I32), Device::cpu());
  const ModelOutput out = run_model(m.config, m.params, batch, true, nullptr);
  const float* row = out.logits.data_as<float>() + (n - 1) * m.config.vocab_size;
  return {row, row + m.config.vocab_size};
}

inline std::vector<int32_t> tokens(int64_t n, uint64_t seed, int64_t vocab) {
  std::vector<int32_t> ids(n);
  for (int64_t i = 0; i < n; ++i) ids[i] = static_cast<int32_t>((seed * 31 + i * 7919 + i * i * 13) % vocab);
  return ids;
}

inline int32_t argmax(const float* row, int64_t n) { return static_cast<int32_t>(std::max_element(row, row + n) - row); }

// Prefill `prompt` in chunks of `chunk`, then decode `steps` greedy tokens one at a time; returns
// the logits of every step's last token, in order.
inline std::vector<std::vector<float>> run_paged(InferenceModel& model, KvCache& cache,
                                                 const std::vector<int32_t>& prompt, int64_t chunk, int64_t steps) {
  BlockTable table;
  std::vector<int32_t> seq = prompt;
  std::vector<std::vector<float>> out;
  int64_t cached = 0;
  const int64_t V = model.config().vocab_size;
  while (static_cast<int64_t>(out.size()) < steps) {
    const int64_t n = std::min<int64_t>(chunk, static_cast<int64_t>(seq.size()) - cached);
    EXPECT_TRUE(cache.reserve(table, cached + n));
    StepInput in;
    for (int64_t k = 0; k < n; ++k) {
      in.ids.push_back(seq[cached + k]);
      in.seq.push_back(0);
      in.pos.push_back(static_cast<int32_t>(cached + k));
    }
    in.block_tables = {&table};
    const bool last = cached + n == static_cast<int64_t>(seq.size());
    if (last) in.logit_rows = {n - 1};
    const Tensor logits = model.step(in, cache);
    cached += n;
    if (!last) continue;
    const float* row = logits.data_as<float>();
    out.emplace_back(row, row + V);
    seq.push_back(argmax(row, V));
  }
  cache.release(table);
  return out;
}

}  // namespace tessera::testing_util
