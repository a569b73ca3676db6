// Runs each tiny HF model of tests/data/hf through Tessera and compares logits, loss and every
// gradient with the float64 references that transformers computed (tests/tools/make_hf_references.py).
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "engine/model_loader.h"
#include "io/safetensors.h"
#include "model/transformer.h"
#include "random_tensors.h"

namespace tessera::testing_util {

struct ParityTolerance {
  double logits, loss, grads;
};

// tests/data, or $TESSERA_TEST_DATA where the tests run from another checkout (the GPU machine).
inline std::string test_data_dir() {
  const char* env = std::getenv("TESSERA_TEST_DATA");
  return env ? env : TESSERA_TEST_DATA;
}

inline std::vector<std::string> hf_reference_models() {
  std::vector<std::string> folders;
  for (const auto& entry : std::filesystem::directory_iterator(test_data_dir() + "/hf"))
    folders.push_back(entry.path().string());
  std::sort(folders.begin(), folders.end());
  return folders;
}

inline void check_parity(const std::string& folder, Device device, DType dtype, const ParityTolerance& tol,
                         bool check_grads, bool activation_checkpointing = false) {
  SCOPED_TRACE(folder);
  const LoadedModel model = load_hf_model(folder, dtype, device);
  const SafetensorsFile inputs = SafetensorsFile::open(folder + "/inputs.safetensors");
  const SafetensorsFile ref = SafetensorsFile::open(folder + "/reference.safetensors");
  const TokenBatch batch = TokenBatch::causal_lm(inputs.tensor("input_ids"), device);
  ModelParams grads;
  if (check_grads) grads = make_params(model.config, DType::F32, device, true);
  const ModelOutput out =
      run_model(model.config, model.params, batch, true, check_grads ? &grads : nullptr, activation_checkpointing);

  EXPECT_LE(relative_error(out.logits, ref.tensor("logits")), tol.logits);
  const double want_loss = ref.tensor("loss").to_vector<float>()[0];
  EXPECT_LE(std::abs(out.loss - want_loss) / std::abs(want_loss), tol.loss) << out.loss << " vs " << want_loss;
  if (!check_grads) return;
  for_each_param(model.config, grads, [&](const std::string& name, Tensor& g) {
    EXPECT_LE(relative_error(g, ref.tensor("grad." + name)), tol.grads) << name;
  });
}

}  // namespace tessera::testing_util
