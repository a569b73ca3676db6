// Tessera's quantized checkpoint (engine/model_weights.h, engine/export_quantized.h): what
// `tessera quantize` and `export --format quantized` write reads back as exactly
// dequantize(quantize(W)) for every scheme; a QAT checkpoint exports to exactly the weights its
// forward used; the packed form is about bits/16 of bf16; damaged folders are refused by name.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/export_source.h"
#include "engine/model_loader.h"
#include "engine/model_weights.h"
#include "io/safetensors_writer.h"
#include "kernels/ops.h"
#include "quant/packed.h"
#include "run_command.h"
#include "test_dir.h"
#include "tiny_model.h"

using namespace tessera;
namespace fs = std::filesystem;
using nlohmann::json;

constexpr auto run = testing_util::tessera_cli;  // {exit code, output}

namespace {

fs::path temp_dir() { return testing_util::fresh_test_dir("tessera_quantized"); }

json tiny_config() {
  return {{"model_type", "llama"},       {"vocab_size", 300},      {"hidden_size", 128},
          {"intermediate_size", 256},    {"num_hidden_layers", 2}, {"num_attention_heads", 4},
          {"num_key_value_heads", 2},    {"max_position_embeddings", 256}, {"rms_norm_eps", 1e-5},
          {"tie_word_embeddings", false}};
}

void expect_bitwise_equal(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const Tensor a = ops::cast(got, DType::F32), b = ops::cast(want, DType::F32);
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.nbytes()), 0) << what;
}

uint64_t folder_bytes(const fs::path& dir, const std::string& extension) {
  uint64_t total = 0;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == extension) total += fs::file_size(e.path());
  return total;
}

}  // namespace

TEST(QuantizedCheckpoint, EverySchemeReadsBackAsDequantizeOfQuantize) {
  const fs::path dir = temp_dir();
  testing_util::write_tiny_model(dir / "model", tiny_config(), "", 11);
  const ModelConfig config = ModelConfig::from_json(tiny_config());
  const SafetensorsModel original = SafetensorsModel::open((dir / "model").string());
  struct Case {
    std::string flags;
    QuantSpec spec;
  };
  for (const Case& c : {Case{"--scheme int8", {QuantScheme::Int8}}, Case{"--scheme int4", {QuantScheme::Int4, 32, true}},
                        Case{"--scheme int4 --group-size 64 --asymmetric", {QuantScheme::Int4, 64, false}},
                        Case{"--scheme q8_0", {QuantScheme::Q8_0}}, Case{"--scheme q4_0", {QuantScheme::Q4_0}}}) {
    SCOPED_TRACE(c.flags);
    const fs::path out = dir / ("q " + c.flags.substr(9));
    fs::remove_all(out);
    auto [code, log] = run("quantize --model " + (dir / "model").string() + " " + c.flags + " --dtype fp32 --out '" +
                           out.string() + "'");
    ASSERT_EQ(code, 0) << log;
    const ModelWeights weights = ModelWeights::open(out.string(), config);
    ASSERT_TRUE(weights.quantization());
    for (const ParamSpec& p : model_parameters(config)) {
      const Tensor w = original.tensor(p.name);
      const bool matrix = p.name.starts_with("model.layers.") && p.name.ends_with("proj.weight");
      EXPECT_EQ(weights.quantization()->selects(p.name), matrix) << p.name;
      const Tensor want = matrix ? quant::dequantize(quant::quantize(w, resolve_quant_spec(c.spec, p.shape)), DType::F32) : w;
      expect_bitwise_equal(weights.tensor(p), want, p.name);
    }
    // And every loader reads it: forward's loader, and the exports through ExportSource.
    const LoadedModel loaded = load_hf_model(out.string(), DType::F32, Device::cpu());
    expect_bitwise_equal(loaded.params.layers[1].down_proj.weight,
                         weights.tensor({.name = "model.layers.1.mlp.down_proj.weight", .shape = {128, 256}}), "loaded");
    const ExportSource source = ExportSource::hf_folder(out.string());
    expect_bitwise_equal(source.read(source.params()[1]), weights.tensor(source.params()[1]), source.params()[1].name);
  }
}

TEST(QuantizedCheckpoint, Int4IsAboutAQuarterOfBf16) {
  const fs::path dir = temp_dir();
  json c = tiny_config();
  c["hidden_size"] = 256, c["intermediate_size"] = 512;
  testing_util::write_tiny_model(dir / "model", c, "", 3);
  ASSERT_EQ(run("export --model " + (dir / "model").string() + " --format quantized --scheme int4 --modules all-linear "
                "embed_tokens lm_head --out " + (dir / "int4").string()).first, 0);
  ASSERT_EQ(run("quantize --model " + (dir / "model").string() + " --scheme int8 --modules all-linear embed_tokens lm_head"
                " --out " + (dir / "int8").string()).first, 0);
  const double bf16 = folder_bytes(dir / "model", ".safetensors") / 2.0;  // the tiny model is written in f32
  // 4 bits + an f16 scale per 32: 4.5 / 16 of bf16, plus the norms and the header.
  EXPECT_LT(folder_bytes(dir / "int4", ".safetensors") / bf16, 0.30);
  EXPECT_GT(folder_bytes(dir / "int4", ".safetensors") / bf16, 0.28);
  EXPECT_LT(folder_bytes(dir / "int8", ".safetensors") / bf16, 0.52);
}

TEST(QuantizedCheckpoint, QatCheckpointExportsTheWeightsItsForwardUsed) {
  const fs::path dir = temp_dir();
  const std::string job = "train " TESSERA_SOURCE_DIR "/configs/tiny-cpu.yaml --set data.train=" TESSERA_SOURCE_DIR
                          "/README.md --set log.metrics_file= --set train.steps=3 --set model.init.intermediate_size=192"
                          " --set quant.qat.weights=q4_0 --set checkpoint.every_steps=3 --set checkpoint.dir=" +
                          (dir / "ckpt").string();
  auto [code, log] = run(job);
  ASSERT_EQ(code, 0) << log;
  const std::string ckpt = (dir / "ckpt/step-3").string();
  // No --scheme: the job's own grid and modules.
  auto [exported, elog] = run("export --checkpoint " + ckpt + " --format quantized --dtype fp32 --out " +
                              (dir / "q").string());
  ASSERT_EQ(exported, 0) << elog;
  EXPECT_NE(elog.find("q4_0 on 7 projections per layer"), std::string::npos) << elog;
  const ExportSource master = ExportSource::checkpoint(ckpt);
  const ModelWeights weights = ModelWeights::open((dir / "q").string(), master.config());
  int quantized = 0;
  for (const ParamSpec& p : master.params()) {
    const Tensor w = master.read(p);
    if (!weights.quantization()->selects(p.name)) {
      expect_bitwise_equal(weights.tensor(p), w, p.name);
      continue;
    }
    ++quantized;
    Tensor seen = Tensor::empty(p.shape, DType::F32);
    ops::fake_quantize(seen, w, {QuantScheme::Q4_0});  // what QatSource hands the forward (CPU: fp32)
    expect_bitwise_equal(weights.tensor(p), seen, p.name);
  }
  EXPECT_EQ(quantized, 14);
}

TEST(QuantizedCheckpoint, BadInputIsRefusedByName) {
  const fs::path dir = temp_dir();
  testing_util::write_tiny_model(dir / "model", tiny_config(), "", 5);
  const std::string model = (dir / "model").string();
  auto [code, out] = run("quantize --model " + model + " --out " + (dir / "q").string());
  EXPECT_NE(code, 0);
  EXPECT_NE(out.find("--scheme is needed"), std::string::npos) << out;
  std::tie(code, out) = run("quantize --model " + model + " --scheme q8_0 --group-size 64 --out " + (dir / "q").string());
  EXPECT_NE(code, 0);
  EXPECT_NE(out.find("int4's"), std::string::npos) << out;
  std::tie(code, out) = run("quantize --model " + model + " --scheme int4 --modules wq --out " + (dir / "q").string());
  EXPECT_NE(out.find("unknown module 'wq'"), std::string::npos) << out;
  std::tie(code, out) = run("quantize --model " + model + " --scheme int4 --out " + model);
  EXPECT_NE(out.find("exists and is not empty"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(dir / "q"));

  ASSERT_EQ(run("quantize --model " + model + " --scheme int4 --out " + (dir / "q").string()).first, 0);
  const ModelConfig config = ModelConfig::from_json(tiny_config());
  const auto expect_refused = [&](const std::string& needle) {
    try {
      ModelWeights::open((dir / "q").string(), config);
      ADD_FAILURE() << "accepted; expected an error with " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  json c;
  std::ifstream(dir / "q/config.json") >> c;
  const json good = c;
  c["quantization_config"]["quant_method"] = "gptq";  // AutoGPTQ's folders are not ours
  std::ofstream(dir / "q/config.json") << c.dump();
  expect_refused("quant_method \"gptq\" is not Tessera's");
  c = good;
  c["quantization_config"]["scheme"] = "int3";
  std::ofstream(dir / "q/config.json") << c.dump();
  expect_refused("quantization_config.scheme");
  c = good;
  c["quantization_config"].erase("modules");
  std::ofstream(dir / "q/config.json") << c.dump();
  expect_refused("quantization_config has no 'modules'");

  // The parts must be there, in their dtypes.
  std::ofstream(dir / "q/config.json") << good.dump();
  const SafetensorsModel files = SafetensorsModel::open((dir / "q").string());
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const std::string& name : files.names())
    if (name != "model.layers.1.self_attn.o_proj.weight.scales") tensors.emplace_back(name, files.tensor(name).clone());
  std::vector<std::pair<std::string, Tensor>> wrong = tensors;
  wrong.emplace_back("model.layers.1.self_attn.o_proj.weight.scales", Tensor::from_vector(std::vector<float>(128 * 4, 0.5f), {128, 4}, DType::F32));
  save_safetensors((dir / "q/model.safetensors").string(), tensors);
  expect_refused("no tensor model.layers.1.self_attn.o_proj.weight.scales");
  save_safetensors((dir / "q/model.safetensors").string(), wrong);
  expect_refused("model.layers.1.self_attn.o_proj.weight.scales is f32[128, 4], int4 of");
}
