// The parity models of tests/data/hf loaded for inference on the CPU, and greedy next tokens by
// repeated full forwards without a cache (run_model), the reference the engine must equal.
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "engine/gguf_loader.h"
#include "engine/inference/generator.h"
#include "model/inference_model.h"
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

}  // namespace tessera::testing_util
