// The int4 checkpoint of the Llama-3-8B shape is <= 0.3x its bf16 size (issue 16) only with
// embed_tokens and lm_head quantized too: untied, they are 2.1 of its 16.1 GB, and left in bf16 they
// hold the checkpoint at 0.375x. Computed from the 8B config's shapes, and checked against the
// files `tessera quantize` writes for a small model of the same proportions.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/export_quantized.h"
#include "engine/inference/model_files.h"
#include "model/inference_model.h"
#include "run_command.h"
#include "test_dir.h"
#include "tiny_model.h"

using namespace tessera;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const std::vector<std::string> kLinear = {"all-linear"}, kEverything = {"all-linear", "embed_tokens", "lm_head"};

json llama3_8b() {
  return {{"model_type", "llama"},        {"vocab_size", 128256},     {"hidden_size", 4096},
          {"intermediate_size", 14336},   {"num_hidden_layers", 32},  {"num_attention_heads", 32},
          {"num_key_value_heads", 8},     {"max_position_embeddings", 8192}, {"tie_word_embeddings", false}};
}

// The 8B's proportions at hidden 64: intermediate 3.5x hidden, 32 layers, GQA 4:1, vocab 31.3x hidden.
json same_proportions() {
  return {{"model_type", "llama"},       {"vocab_size", 2004},      {"hidden_size", 64},
          {"intermediate_size", 224},    {"num_hidden_layers", 32}, {"num_attention_heads", 4},
          {"num_key_value_heads", 1},    {"max_position_embeddings", 64}, {"tie_word_embeddings", false}};
}

double size_over_bf16(const ModelConfig& c, const std::vector<std::string>& modules, int64_t group = 32) {
  const QuantTargets targets = resolve_quant_targets({QuantScheme::Int4, group, true}, modules, c, "test");
  return double(quantized_tensor_bytes(c, targets, DType::BF16).total()) /
         double(quantized_tensor_bytes(c, QuantTargets{}, DType::BF16).total());
}

// The tensor bytes of a folder's safetensors files: each file less its 8-byte length and JSON header.
uint64_t tensor_bytes(const fs::path& dir) {
  uint64_t total = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".safetensors") continue;
    std::ifstream in(e.path(), std::ios::binary);
    uint64_t header = 0;
    in.read(reinterpret_cast<char*>(&header), 8);
    total += fs::file_size(e.path()) - 8 - header;
  }
  return total;
}

}  // namespace

TEST(QuantizedSize, Int4Of8BIsUnderThreeTenthsOfBf16WithTheEmbeddingsQuantized) {
  const ModelConfig c = ModelConfig::from_json(llama3_8b(), "8b");
  EXPECT_NEAR(quantized_tensor_bytes(c, QuantTargets{}, DType::BF16).total() / 1e9, 16.06, 0.01);
  const double linear = size_over_bf16(c, kLinear), everything = size_over_bf16(c, kEverything);
  std::printf("[ 8B int4 g32 ] all-linear %.4fx bf16, with embed_tokens and lm_head %.4fx (g128: %.4fx)\n", linear,
              everything, size_over_bf16(c, kEverything, 128));
  EXPECT_GT(linear, 0.37);  // 4.5 / 16 of the projections + 2.1 GB of bf16 embeddings
  EXPECT_LT(everything, 0.30);
  EXPECT_NEAR(everything, 4.5 / 16, 0.001);
  EXPECT_LT(size_over_bf16(c, kEverything, 128), 0.26);
}

// What the files hold is what quantized_tensor_bytes says, and a model of the 8B's proportions
// lands where the 8B does; the all-int4 checkpoint serves with its lm_head packed.
TEST(QuantizedSize, FilesOfTheSameProportionsMatchTheShapes) {
  const fs::path dir = testing_util::fresh_test_dir("tessera_size");
  testing_util::write_tiny_model(dir / "model", same_proportions(), "", 5);
  const ModelConfig c = ModelConfig::from_json(same_proportions(), "small");
  const double bf16 = quantized_tensor_bytes(c, QuantTargets{}, DType::BF16).total();
  for (const auto& modules : {kLinear, kEverything}) {
    std::string names;
    for (const std::string& m : modules) names += (names.empty() ? "" : " ") + m;
    SCOPED_TRACE(names);
    const fs::path out = dir / (modules.size() == 1 ? "linear" : "everything");
    const auto [code, log] =
        testing_util::tessera_cli("quantize --model " + (dir / "model").string() + " --scheme int4 --modules " + names +
                                  " --out " + out.string());
    ASSERT_EQ(code, 0) << log;
    const QuantTargets targets = resolve_quant_targets({QuantScheme::Int4, 32, true}, modules, c, "test");
    EXPECT_EQ(tensor_bytes(out), quantized_tensor_bytes(c, targets, DType::BF16).total());
    EXPECT_NEAR(tensor_bytes(out) / bf16, size_over_bf16(ModelConfig::from_json(llama3_8b(), "8b"), modules), 0.005);
  }
  const inference::LoadedInferenceModel m = inference::load_inference_model({.model = (dir / "everything").string()});
  ASSERT_NE(m.model->packed_lm_head(), nullptr);
  EXPECT_EQ(m.model->packed_lm_head()->spec, (QuantSpec{QuantScheme::Int4, 32, true}));
  EXPECT_EQ(m.model->packed_lm_head()->shape, (Shape{2004, 64}));
  fs::remove_all(dir);
}
