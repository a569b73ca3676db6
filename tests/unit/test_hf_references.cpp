// The tiny Hugging Face models made by tests/tools/make_hf_references.py (transformers 5.17):
// each folder must load as a ModelConfig whose parameter list matches its safetensors exactly.
#include <gtest/gtest.h>

#include <filesystem>

#include "io/safetensors.h"
#include "model/model_config.h"
#include "model/model_config_params.h"

using namespace tessera;

TEST(HfReferences, EveryFamilyLoadsAndValidates) {
  int seen = 0;
  for (const auto& entry : std::filesystem::directory_iterator(TESSERA_TEST_DATA "/hf")) {
    SCOPED_TRACE(entry.path().string());
    const ModelConfig config = ModelConfig::from_file(entry.path().string());
    const SafetensorsModel weights = SafetensorsModel::open(entry.path().string());
    EXPECT_NO_THROW(validate_checkpoint(config, weights));
    const SafetensorsFile reference = SafetensorsFile::open((entry.path() / "reference.safetensors").string());
    for (const ParamSpec& p : model_parameters(config)) {
      if (p.name == "lm_head.weight" && config.tie_word_embeddings) continue;
      ASSERT_TRUE(reference.contains("grad." + p.name)) << p.name;
      EXPECT_EQ(reference.info("grad." + p.name).shape, p.shape) << p.name;
    }
    ++seen;
  }
  EXPECT_EQ(seen, 6);
}
