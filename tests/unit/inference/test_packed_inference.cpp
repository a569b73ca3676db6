// Quantized models run packed in inference (engine/model_loader.h, QuantizedWeights::packed): a
// quantized checkpoint of every scheme and a GGUF file in q8_0 and q4_0 keep each projection as a
// packed base in its Linear (no dense copy: the bases take about bits/16 of bf16), and greedy
// decoding over the paged cache gives the logits of the same model loaded dequantized, exactly
// (CPU fp32: gemm_packed multiplies by the dequantized weights).
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "../../error_text.h"
#include "../../inference_models.h"
#include "../../run_command.h"
#include "../../test_dir.h"
#include "../../tiny_model.h"
#include "engine/export_gguf.h"
#include "engine/model_loader.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"

using namespace tessera;
using namespace tessera::testing_util;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir() { return testing_util::fresh_test_dir("tessera_packed"); }

nlohmann::json tiny_config(const std::string& model_type) {
  return {{"model_type", model_type},   {"vocab_size", 300},      {"hidden_size", 128},
          {"intermediate_size", 256},    {"num_hidden_layers", 2}, {"num_attention_heads", 4},
          {"num_key_value_heads", 2},    {"max_position_embeddings", 256}, {"rms_norm_eps", 1e-5},
          {"tie_word_embeddings", false}};
}

// Every projection holds a packed base and no dense weight; returns the bases' bytes over the
// bytes of the same weights in bf16.
double packed_fraction_of_bf16(const LoadedModel& m) {
  int64_t bytes = 0, elements = 0;
  for (const LayerParams& layer : m.params.layers)
    for (int p = 0; p < kProjections; ++p) {
      const Linear& l = projection(layer, Projection(p));
      EXPECT_FALSE(l.weight.defined()) << projection_path(Projection(p));
      EXPECT_TRUE(l.packed && l.packed->defined()) << projection_path(Projection(p));
      EXPECT_EQ(l.packed_matmul, PackedMatmul::gemm_packed);
      if (!l.packed) continue;
      bytes += l.packed->nbytes();
      elements += l.packed->numel();
    }
  return double(bytes) / double(2 * std::max<int64_t>(elements, 1));
}

// Greedy decoding of both models, logit for logit.
void expect_same_decoding(const LoadedModel& packed, const LoadedModel& dense) {
  auto run = [](const LoadedModel& m) {
    InferenceModel model(m.config, std::make_shared<OwnedParams>(m.params), Device::cpu(), DType::F32);
    if (m.packed_lm_head) model.use_packed_lm_head(m.packed_lm_head);
    KvCache cache(m.config, 16, 4, DType::F32, Device::cpu());
    return run_paged(model, cache, tokens(7, 3, m.config.vocab_size), 3, 6);
  };
  const auto got = run(packed), want = run(dense);
  ASSERT_EQ(got.size(), want.size());
  for (size_t step = 0; step < got.size(); ++step) {
    float worst = 0;
    for (size_t v = 0; v < got[step].size(); ++v) worst = std::max(worst, std::abs(got[step][v] - want[step][v]));
    EXPECT_LE(worst, 1e-5f) << "step " << step;
  }
}

}  // namespace

TEST(PackedInference, QuantizedCheckpointsDecodeAsTheirDequantizedWeights) {
  const fs::path dir = temp_dir();
  write_tiny_model(dir / "model", tiny_config("llama"), "", 11);
  struct Case {
    std::string flags;
    double most;  // of bf16's bytes: bits / 16 plus the scales
  };
  int i = 0;
  for (const Case& c : {Case{"int8", 0.52}, Case{"int4", 0.32}, Case{"int4 --group-size 128 --asymmetric", 0.28},
                        Case{"q8_0", 0.54}, Case{"q4_0", 0.29}}) {
    SCOPED_TRACE(c.flags);
    const fs::path out = dir / ("quantized-" + std::to_string(i++));
    fs::remove_all(out);
    auto [code, log] = tessera_cli("quantize --model " + (dir / "model").string() + " --scheme " + c.flags +
                                   " --dtype fp32 --out " + out.string());
    ASSERT_EQ(code, 0) << log;
    const LoadedModel packed = load_hf_model(out.string(), DType::F32, Device::cpu(), QuantizedWeights::packed);
    const LoadedModel dense = load_hf_model(out.string(), DType::F32, Device::cpu());
    EXPECT_LE(packed_fraction_of_bf16(packed), c.most);
    expect_same_decoding(packed, dense);
  }
  fs::remove_all(dir);
}

// A checkpoint that stores embed_tokens and lm_head quantized too (what brings int4 under 0.3x of
// bf16, tests/unit/test_quantized_size.cpp) keeps its lm_head packed for the logits' product, tied
// or not, and still decodes as its dequantized weights.
TEST(PackedInference, AQuantizedLmHeadStaysPacked) {
  const fs::path dir = temp_dir();
  for (const bool tied : {false, true}) {
    nlohmann::json config = tiny_config("llama");
    config["tie_word_embeddings"] = tied;
    const fs::path model = dir / (tied ? "tied" : "untied");
    write_tiny_model(model, config, "", 19);
    for (const std::string scheme : {"int4", "q8_0"}) {
      SCOPED_TRACE(std::string(tied ? "tied " : "untied ") + scheme);
      const fs::path out = model.string() + "-" + scheme;
      auto [code, log] = tessera_cli("quantize --model " + model.string() + " --scheme " + scheme +
                                     " --modules all-linear embed_tokens lm_head --dtype fp32 --out " + out.string());
      ASSERT_EQ(code, 0) << log;
      const LoadedModel packed = load_hf_model(out.string(), DType::F32, Device::cpu(), QuantizedWeights::packed);
      const LoadedModel dense = load_hf_model(out.string(), DType::F32, Device::cpu());
      ASSERT_NE(packed.packed_lm_head, nullptr);
      EXPECT_EQ(packed.packed_lm_head->spec.scheme, parse_quant_scheme(scheme));
      EXPECT_EQ(packed.packed_lm_head->shape, (Shape{300, 128}));
      EXPECT_EQ(dense.packed_lm_head, nullptr);
      EXPECT_EQ(packed.params.lm_head.defined(), tied) << "an untied packed head has no dense copy";
      expect_same_decoding(packed, dense);
      if (tied) continue;
      InferenceModel model(packed.config, std::make_shared<OwnedParams>(packed.params), Device::cpu(), DType::F32);
      model.use_packed_lm_head(packed.packed_lm_head);
      EXPECT_EQ(error_of([&] { model.quantize_lm_head({QuantScheme::Int8}); }),
                "lm_head: the checkpoint stores it packed, with no dense copy to quantize again as int8 (it runs as "
                "stored without --lm-head-quant / lm_head_quant)");
    }
  }
  fs::remove_all(dir);
}

// llama's q/k rows are permuted in the file: the packed rows must be put back as the dense ones are.
TEST(PackedInference, GgufQ8AndQ4FilesDecodeAsTheirDequantizedWeights) {
  const fs::path dir = temp_dir();
  for (const std::string arch : {"llama", "qwen3"}) {
    // A GGUF file carries a real tokenizer, so the vocabulary is that of one.
    nlohmann::json config = tiny_config(arch);
    config["hidden_size"] = 64;
    config["intermediate_size"] = 128;
    config["vocab_size"] = arch == "llama" ? 128256 : 151936;
    if (arch == "qwen3") config["head_dim"] = 32;
    write_tiny_model(dir / arch, config, TESSERA_TEST_DATA "/tokenizers/" + std::string(arch == "llama" ? "llama3" : "qwen3"),
                     13);
    for (const std::string quant : {"q8_0", "q4_0"}) {
      SCOPED_TRACE(arch + " " + quant);
      const fs::path gguf = dir / (arch + "-" + quant + ".gguf");
      export_gguf({.model = (dir / arch).string(), .out = gguf.string(), .type = gguf::parse_tensor_type(quant)});
      const LoadedModel packed = load_gguf_model(gguf.string(), DType::F32, Device::cpu(), QuantizedWeights::packed);
      const LoadedModel dense = load_gguf_model(gguf.string(), DType::F32, Device::cpu());
      EXPECT_LE(packed_fraction_of_bf16(packed), quant == "q8_0" ? 0.54 : 0.29);
      expect_same_decoding(packed, dense);
    }
  }
  fs::remove_all(dir);
}

// `tessera generate` loads a quantized checkpoint packed (it says so) and its greedy tokens are the
// dequantized model's.
TEST(PackedInference, GenerateRunsAQuantizedCheckpointPacked) {
  const fs::path dir = temp_dir();
  write_tiny_model(dir / "model", tiny_config("llama"), "", 17);
  const fs::path out = dir / "int4";
  auto [code, log] = tessera_cli("quantize --model " + (dir / "model").string() + " --scheme int4 --dtype fp32 --out " +
                                 out.string());
  ASSERT_EQ(code, 0) << log;
  const std::vector<int32_t> prompt = tokens(7, 5, 300);
  save_safetensors((dir / "in.safetensors").string(),
                   {{"input_ids", Tensor::from_vector(std::vector<int64_t>(prompt.begin(), prompt.end()), {1, 7},
                                                      DType::I64)}});
  std::tie(code, log) = tessera_cli("generate --model " + out.string() + " --input-ids " +
                                    (dir / "in.safetensors").string() + " --output " +
                                    (dir / "out.safetensors").string() + " --temperature 0 --max-new-tokens 6");
  ASSERT_EQ(code, 0) << log;
  EXPECT_NE(log.find("14 projections kept packed"), std::string::npos) << log;
  const Tensor generated = SafetensorsFile::open((dir / "out.safetensors").string()).tensor("generated").clone();
  ASSERT_EQ(generated.shape(), (Shape{1, 6}));
  const LoadedModel dense = load_hf_model(out.string(), DType::F32, Device::cpu());
  InferenceModel model(dense.config, std::make_shared<OwnedParams>(dense.params), Device::cpu(), DType::F32);
  KvCache cache(dense.config, 16, 4, DType::F32, Device::cpu());
  const auto logits = run_paged(model, cache, prompt, 7, 6);
  for (int64_t t = 0; t < 6; ++t)
    EXPECT_EQ(generated.data_as<int64_t>()[t], argmax(logits[t].data(), dense.config.vocab_size)) << "token " << t;
  fs::remove_all(dir);
}
