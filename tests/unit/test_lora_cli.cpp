// A LoRA fine-tune through the binary, as the quickstart does it: a tiny model is trained and
// exported, a LoRA job fine-tunes it, the adapter is exported for PEFT and merged into the base,
// and the adapter applied by `tessera forward --adapter` gives the merged model's logits (1e-5).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "engine/checkpoint/manifest.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "random_tensors.h"
#include "run_command.h"

using namespace tessera;
namespace fs = std::filesystem;

constexpr auto run = testing_util::tessera_cli;  // {exit code, output}

namespace {

const std::string kJob = "train " TESSERA_SOURCE_DIR "/configs/tiny-cpu.yaml --set data.train=" TESSERA_SOURCE_DIR
                         "/README.md --set log.metrics_file= --set log.every_steps=1";

}  // namespace

TEST(LoraCli, FineTuneExportPeftMergeAndForwardWithTheAdapter) {
  const fs::path dir = fs::path(::testing::TempDir()) / "lora_cli";
  fs::remove_all(dir);
  auto [code, out] = run(kJob + " --set train.steps=2 --set checkpoint.dir=" + (dir / "base-ckpt").string());
  ASSERT_EQ(code, 0) << out;
  const std::string base = (dir / "base").string();
  std::tie(code, out) = run("export --checkpoint " + (dir / "base-ckpt/step-2").string() + " --out " + base +
                            " --dtype fp32");
  ASSERT_EQ(code, 0) << out;

  const std::string lora = kJob + " --set model.init= --set model.path=" + base + " --set model.tokenizer=bytes" +
                           " --set checkpoint.dir=" + (dir / "lora-ckpt").string() +
                           " --set lora.r=4 --set lora.dropout=0.1 --set lora.modules_to_save=[embed_tokens]";
  std::tie(code, out) = run(lora + " --set train.steps=3 --set train.lr=1e-2");
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("LoRA r 4 on q_proj k_proj v_proj o_proj gate_proj up_proj down_proj"), std::string::npos) << out;
  const std::string ckpt = (dir / "lora-ckpt/step-3").string();

  const std::string adapter = (dir / "adapter").string(), merged = (dir / "merged").string();
  std::tie(code, out) = run("export --checkpoint " + ckpt + " --format peft --out " + adapter);
  ASSERT_EQ(code, 0) << out;
  std::ifstream config_file(adapter + "/adapter_config.json");
  const nlohmann::json config = nlohmann::json::parse(config_file);
  EXPECT_EQ(config["peft_type"], "LORA");
  EXPECT_EQ(config["task_type"], "CAUSAL_LM");
  EXPECT_EQ(config["r"], 4);
  EXPECT_EQ(config["lora_alpha"], 32.0);
  EXPECT_EQ(config["target_modules"].size(), 7u);
  EXPECT_EQ(config["modules_to_save"], nlohmann::json::array({"embed_tokens"}));
  EXPECT_EQ(config["base_model_name_or_path"], fs::absolute(base).string());
  const SafetensorsFile weights = SafetensorsFile::open(adapter + "/adapter_model.safetensors");
  const TensorInfo& a = weights.info("base_model.model.model.layers.1.mlp.down_proj.lora_A.weight");
  EXPECT_EQ(a.shape, Shape({4, 176}));
  EXPECT_EQ(a.dtype, DType::F32) << "PEFT adapters are fp32 unless --dtype";
  EXPECT_EQ(weights.info("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight").shape, Shape({64, 4}));
  EXPECT_EQ(weights.info("base_model.model.model.embed_tokens.weight").shape, Shape({259, 64}));
  EXPECT_EQ(weights.names().size(), 2u * 7 * 2 + 1);

  std::tie(code, out) = run("export --checkpoint " + ckpt + " --out " + merged + " --dtype fp32");
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("LoRA adapters merged"), std::string::npos) << out;

  const std::string ids = (dir / "ids.safetensors").string();
  save_safetensors(ids, {{"input_ids", Tensor::from_vector<int64_t>({72, 101, 108, 108, 111, 32, 119, 111, 114}, {1, 9},
                                                                     DType::I64)}});
  auto forward = [&](const std::string& model, const std::string& extra, const std::string& name) {
    const std::string output = (dir / (name + ".safetensors")).string();
    const auto [c, o] = run("forward --model " + model + " --input-ids " + ids + " --output " + output +
                            " --device cpu " + extra);
    EXPECT_EQ(c, 0) << o;
    return output;
  };
  const SafetensorsFile applied = SafetensorsFile::open(forward(base, "--adapter " + adapter + " --grads", "applied"));
  const SafetensorsFile flat = SafetensorsFile::open(forward(merged, "", "merged"));
  const SafetensorsFile plain = SafetensorsFile::open(forward(base, "", "plain"));
  EXPECT_LE(testing_util::relative_error(applied.tensor("logits"), flat.tensor("logits")), 1e-5);
  EXPECT_GT(testing_util::relative_error(applied.tensor("logits"), plain.tensor("logits")), 1e-3)
      << "the adapter must change the model";
  const Tensor ga = applied.tensor("grad.base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
  EXPECT_EQ(ga.shape(), Shape({4, 64}));
  EXPECT_GT(testing_util::squared_norm(ga), 0.0);
  EXPECT_TRUE(applied.contains("grad.base_model.model.model.layers.1.mlp.up_proj.lora_B.weight"));

  // Continuing from the adapter: the job must have its shape.
  std::tie(code, out) = run(lora + " --set train.steps=1 --set checkpoint.dir= --set lora.adapter=" + adapter);
  EXPECT_EQ(code, 0) << out;
  std::tie(code, out) = run(lora + " --set train.steps=1 --set checkpoint.dir= --set lora.r=8 --set lora.adapter=" +
                            adapter);
  EXPECT_NE(code, 0);
  EXPECT_NE(out.find("tessera: error: lora.adapter: " + adapter + " has r 4, the job's lora.r is 8"), std::string::npos)
      << out;
}

// Adapters that are not plain LoRA for this model are refused with one line naming the key.
TEST(LoraCli, ForwardRefusesAdaptersItCannotApply) {
  const fs::path dir = fs::path(::testing::TempDir()) / "lora_refuse";
  fs::remove_all(dir);
  fs::create_directories(dir / "adapter");
  const std::string model = std::string(TESSERA_SOURCE_DIR) + "/tests/data/hf/llama_gqa";
  const std::string ids = (dir / "ids.safetensors").string();
  save_safetensors(ids, {{"input_ids", Tensor::from_vector<int64_t>({1, 2, 3}, {1, 3}, DType::I64)}});
  auto forward = [&](const nlohmann::json& config, const std::vector<std::pair<std::string, Tensor>>& tensors) {
    std::ofstream(dir / "adapter/adapter_config.json") << config.dump();
    save_safetensors((dir / "adapter/adapter_model.safetensors").string(), tensors);
    return run("forward --model " + model + " --adapter " + (dir / "adapter").string() + " --input-ids " + ids +
               " --output " + (dir / "out.safetensors").string() + " --device cpu");
  };
  const nlohmann::json lora = {{"peft_type", "LORA"}, {"r", 2}, {"lora_alpha", 4}, {"target_modules", {"q_proj"}}};
  const auto config = nlohmann::json::parse(std::ifstream(model + "/config.json"));
  const int64_t hidden = config["hidden_size"], layers = config["num_hidden_layers"];
  const int64_t heads = config["num_attention_heads"];
  const int64_t q = heads * config.value("head_dim", hidden / heads);
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (int64_t l = 0; l < layers; ++l) {
    const std::string p = "base_model.model.model.layers." + std::to_string(l) + ".self_attn.q_proj.";
    tensors.push_back({p + "lora_A.weight", Tensor::empty({2, hidden}, DType::F32)});
    tensors.push_back({p + "lora_B.weight", Tensor::empty({q, 2}, DType::F32)});
  }
  for (auto& [name, t] : tensors) std::fill_n(t.data_as<float>(), t.numel(), 0.01f);
  auto [code, out] = forward(lora, tensors);
  EXPECT_EQ(code, 0) << out;

  auto expect_refused = [&](const nlohmann::json& c, const std::vector<std::pair<std::string, Tensor>>& t,
                            const std::string& message) {
    const auto [rc, output] = forward(c, t);
    EXPECT_NE(rc, 0);
    EXPECT_NE(output.find("tessera: error: "), std::string::npos) << output;
    EXPECT_NE(output.find(message), std::string::npos) << output;
  };
  nlohmann::json dora = lora;
  dora["use_dora"] = true;
  expect_refused(dora, tensors, "adapter_config.json: use_dora is set: Tessera reads plain LoRA adapters only");
  nlohmann::json other = lora;
  other["target_modules"] = {"q_proj", "embed_tokens"};
  expect_refused(other, tensors, "target_modules: 'embed_tokens' is not a module Tessera adapts");
  nlohmann::json ia3 = lora;
  ia3["peft_type"] = "IA3";
  expect_refused(ia3, tensors, "peft_type is \"IA3\": Tessera reads LORA adapters only");
  nlohmann::json wider = lora;
  wider["r"] = 3;
  expect_refused(wider, tensors, "has shape [2, " + std::to_string(hidden) + "], this llama model takes [3, ");
  auto missing = tensors;
  missing.pop_back();
  expect_refused(lora, missing, "missing tensor 'base_model.model.model.layers." + std::to_string(layers - 1));
  std::ofstream(dir / "adapter/adapter_config.json") << "{\"peft_type\": ";
  const auto [rc, output] = run("forward --model " + model + " --adapter " + (dir / "adapter").string() +
                                " --input-ids " + ids + " --output " + (dir / "out.safetensors").string());
  EXPECT_NE(rc, 0);
  EXPECT_NE(output.find("adapter_config.json: not valid JSON"), std::string::npos) << output;
}

// QLoRA through the binary: the job trains on an nf4 base and says so; `tessera config` shows the
// keys; resuming over another base is refused; the merged export says it merged into
// dequantize(base), the PEFT export what that means.
TEST(LoraCli, QloraJobAndItsExportsSaySo) {
  const fs::path dir = fs::path(::testing::TempDir()) / "qlora_cli";
  fs::remove_all(dir);
  auto [code, out] = run("config " TESSERA_SOURCE_DIR "/configs/tiny-cpu.yaml --set lora.base_quant=nf4");
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("base_quant: nf4"), std::string::npos) << out;
  EXPECT_NE(out.find("packed_matmul: dequantize"), std::string::npos) << out;
  std::tie(code, out) = run("config " TESSERA_SOURCE_DIR "/configs/tiny-cpu.yaml --set lora.base_quant=int4");
  EXPECT_NE(code, 0);
  EXPECT_NE(out.find("lora.base_quant: expected one of none, nf4, int8, got \"int4\""), std::string::npos) << out;

  std::tie(code, out) = run(kJob + " --set train.steps=2 --set checkpoint.dir=" + (dir / "ckpt").string() +
                            " --set lora.r=4 --set lora.base_quant=nf4");
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("down_proj, base nf4"), std::string::npos) << out;
  const std::string ckpt = (dir / "ckpt/step-2").string();
  // Resuming it over another base_quant is refused, naming both.
  std::tie(code, out) = run(kJob + " --set train.steps=3 --set checkpoint.dir=" + (dir / "ckpt").string() +
                            " --set lora.r=4 --set lora.base_quant=none");
  EXPECT_NE(code, 0);
  EXPECT_NE(out.find(ckpt + ": its adapters were trained on a base stored as lora.base_quant nf4, this job's is none"),
            std::string::npos)
      << out;
  std::tie(code, out) = run("export --checkpoint " + ckpt + " --out " + (dir / "merged").string() + " --dtype fp32");
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("merged into dequantize(base) under nf4"), std::string::npos) << out;
  std::tie(code, out) = run("export --checkpoint " + ckpt + " --format peft --out " + (dir / "adapter").string());
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("trained on a nf4 base"), std::string::npos) << out;
}

namespace {

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

// A LoRA checkpoint records its base (model.path and the SHA-256 of each weight file): resuming on
// the same base works on another world size (saved by 2 ranks, resumed by 1) and from a moved
// copy; a base whose weight file changed, or with another file set, is refused naming the file,
// by a resume and by the merged export (the PEFT export needs no base); a weight file damaged
// against the base folder's SHA256SUMS is refused by name.
TEST(LoraCli, CheckpointRecordsItsBaseAndResumeRefusesAnother) {
  const fs::path dir = fs::path(::testing::TempDir()) / "lora_base";
  fs::remove_all(dir);
  auto [code, out] = run(kJob + " --set train.steps=2 --set checkpoint.every_steps=1 --set checkpoint.dir=" +
                         (dir / "base-ckpt").string());
  ASSERT_EQ(code, 0) << out;
  const fs::path base = dir / "base", other = dir / "other";
  for (const auto& [step, folder] : {std::pair{"2", base}, std::pair{"1", other}}) {
    std::tie(code, out) = run("export --checkpoint " + (dir / "base-ckpt/step-").string() + step + " --out " +
                              folder.string() + " --dtype fp32");
    ASSERT_EQ(code, 0) << out;
  }
  // One schedule of 8 steps, stopped after `stop`.
  auto lora = [&](const fs::path& model, int stop) {
    return kJob + " --set model.init= --set model.path=" + model.string() + " --set model.tokenizer=bytes" +
           " --set checkpoint.dir=" + (dir / "lora-ckpt").string() + " --set lora.r=4 --set train.steps=8" +
           " --set train.stop_after=" + std::to_string(stop);
  };
  const testing_util::CommandResult two = testing_util::run_command(
      TESSERA_SOURCE_DIR "/scripts/mpirun.sh -np 2 " TESSERA_BIN_DIR "/tessera " + lora(base, 2));
  ASSERT_EQ(two.exit_code, 0) << two.output;
  const nlohmann::json saved = nlohmann::json::parse(read_text(dir / "lora-ckpt/step-2/trainer_state.json"));
  EXPECT_EQ(saved["world_size"], 2);
  EXPECT_EQ(saved["base"]["path"], base.string());
  const std::string sum = saved["base"]["sha256"]["model.safetensors"];
  EXPECT_EQ(sum, checkpoint::sha256_file((base / "model.safetensors").string()));
  EXPECT_EQ(saved["base"]["sha256"].size(), 1u);
  EXPECT_NE(read_text(base / "SHA256SUMS").find(sum + "  model.safetensors"), std::string::npos);

  // The same base on one rank resumes.
  std::tie(code, out) = run(lora(base, 3));
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("resumed from " + (dir / "lora-ckpt/step-2").string()), std::string::npos) << out;
  const std::string step3 = (dir / "lora-ckpt/step-3").string();
  fs::copy(base, dir / "moved", fs::copy_options::recursive);

  // Another model.safetensors (with its own, matching SHA256SUMS) under the same path: refused by a
  // resume and by the merged export, naming the file.
  fs::copy(other, base, fs::copy_options::overwrite_existing | fs::copy_options::recursive);
  const std::string changed = (base / "model.safetensors").string() + ": SHA-256 ";
  const std::string recorded = "... is not the " + sum.substr(0, 12) + "... recorded in " + step3 +
                               ": its adapters were trained on " + (base / "model.safetensors").string() + " as it was then";
  std::tie(code, out) = run(lora(base, 4));
  EXPECT_NE(code, 0);
  EXPECT_NE(out.find(changed), std::string::npos) << out;
  EXPECT_NE(out.find(recorded), std::string::npos) << out;
  std::tie(code, out) = run("export --checkpoint " + step3 + " --out " + (dir / "merged").string());
  EXPECT_NE(code, 0);
  EXPECT_NE(out.find(changed), std::string::npos) << out;
  EXPECT_NE(out.find(recorded), std::string::npos) << out;
  std::tie(code, out) = run("export --checkpoint " + step3 + " --format peft --out " + (dir / "adapter").string());
  EXPECT_EQ(code, 0) << out;

  // The original base moved elsewhere resumes.
  std::tie(code, out) = run(lora(dir / "moved", 4));
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("its base moved from " + base.string() + " to " + (dir / "moved").string()), std::string::npos)
      << out;
  const std::string ckpt = (dir / "lora-ckpt/step-4").string();

  // The same tensors as one shard named by an index: another file set.
  const fs::path sharded = dir / "sharded";
  fs::create_directories(sharded);
  fs::copy(dir / "moved/config.json", sharded / "config.json");
  fs::copy(dir / "moved/model.safetensors", sharded / "model-00001-of-00001.safetensors");
  nlohmann::json index = {{"metadata", nlohmann::json::object()}, {"weight_map", nlohmann::json::object()}};
  const SafetensorsFile shard = SafetensorsFile::open((sharded / "model-00001-of-00001.safetensors").string());
  for (const std::string& name : shard.names()) index["weight_map"][name] = "model-00001-of-00001.safetensors";
  std::ofstream(sharded / "model.safetensors.index.json") << index.dump();
  std::tie(code, out) = run(lora(sharded, 5));
  EXPECT_NE(code, 0);
  EXPECT_NE(out.find(ckpt + ": its adapters were trained on the base " + (dir / "moved").string() +
                     " (model.safetensors); this job's base is " + sharded.string() +
                     " (model-00001-of-00001.safetensors)"),
            std::string::npos)
      << out;

  // A byte of the moved copy's weights flipped: its SHA256SUMS names the file.
  {
    std::fstream f(dir / "moved/model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-3, std::ios::end);
    const char byte = static_cast<char>(f.get() ^ 0xff);
    f.seekp(-3, std::ios::end);
    f.put(byte);
  }
  std::tie(code, out) = run(lora(dir / "moved", 5));
  EXPECT_NE(code, 0);
  EXPECT_NE(out.find((dir / "moved/model.safetensors").string() + ": checksum mismatch against SHA256SUMS"),
            std::string::npos)
      << out;
  fs::remove_all(dir);
}
