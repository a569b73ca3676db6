// The CPU fp32 path against transformers (float64): logits <= 1e-4, loss <= 1e-5, gradients <= 1e-3.
#include "model_parity.h"

using namespace tessera;
using namespace tessera::testing_util;

TEST(ModelParity, CpuFp32MatchesTransformers) {
  for (const std::string& folder : hf_reference_models())
    check_parity(folder, Device::cpu(), DType::F32, {1e-4, 1e-5, 1e-3}, /*check_grads=*/true);
}

TEST(ModelParity, ActivationCheckpointingGivesTheSameGradients) {
  const std::string folder = test_data_dir() + "/hf/llama_gqa";
  check_parity(folder, Device::cpu(), DType::F32, {1e-4, 1e-5, 1e-3}, true, /*activation_checkpointing=*/true);
}

TEST(ModelParity, RopeFrequenciesMatchTransformers) {
  for (const std::string& folder : hf_reference_models()) {
    SCOPED_TRACE(folder);
    const ModelConfig config = ModelConfig::from_file(folder);
    const SafetensorsFile ref = SafetensorsFile::open(folder + "/reference.safetensors");
    if (!ref.contains("rope.inv_freq")) GTEST_SKIP() << "references made before rope.inv_freq was recorded";
    const RopeTable rope = RopeTable::make(config, Device::cpu());
    EXPECT_LE(relative_error(rope.inv_freq, ref.tensor("rope.inv_freq")), 1e-6);
    EXPECT_NEAR(rope.attention_scaling, ref.tensor("rope.attention_scaling").to_vector<float>()[0], 1e-6);
  }
}
