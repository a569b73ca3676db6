// One loader for generate, eval and serve (engine/model_folder.h): generate verifies a folder
// against its SHA256SUMS and refuses a damaged file by name (--no-verify skips it); checksums given
// in place of SHA256SUMS (the serve config's `checksums`) are checked the same way; generate
// --adapter runs the adapter (its greedy tokens are the adapted model's).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "../../inference_models.h"
#include "../../error_text.h"
#include "../../run_command.h"
#include "core/error.h"
#include "engine/checkpoint/manifest.h"
#include "engine/inference/model_files.h"
#include "engine/sha256sums.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "kernels/ops.h"
#include "lora/apply.h"
#include "lora/peft.h"

using namespace tessera;
using namespace tessera::testing_util;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("tessera-integrity-" + name + "-" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// A copy of the llama_gqa parity model with a SHA256SUMS, then one weight changed.
fs::path damaged_copy(const fs::path& dir) {
  const fs::path model = dir / "model";
  fs::copy(parity_model_dir("llama_gqa"), model, fs::copy_options::recursive);
  for (const fs::directory_entry& e : fs::directory_iterator(model))
    fs::permissions(e.path(), fs::perms::owner_write, fs::perm_options::add);
  write_sha256sums(model.string(), files_in(model.string()));
  std::fstream f(model / "model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(-4, std::ios::end);
  f.write("\x00\x00\x00\x40", 4);  // the last f32 weight becomes 2.0
  EXPECT_TRUE(f.good()) << "cannot damage the copy";
  return model;
}

std::vector<int64_t> generated_ids(const fs::path& dir, const std::string& args) {
  const auto [code, out] = tessera_cli("generate --input-ids " + (dir / "in.safetensors").string() + " --output " +
                                       (dir / "out.safetensors").string() + " --temperature 0 --max-new-tokens 6 " + args);
  EXPECT_EQ(code, 0) << out;
  if (code != 0) return {};
  return SafetensorsFile::open((dir / "out.safetensors").string()).tensor("generated").clone().to_vector<int64_t>();
}

}  // namespace

TEST(ModelIntegrity, GenerateRefusesADamagedFileNamingItUnlessNoVerify) {
  const fs::path dir = temp_dir("generate");
  const fs::path model = damaged_copy(dir);
  save_safetensors((dir / "in.safetensors").string(),
                   {{"input_ids", Tensor::from_vector(std::vector<int64_t>{3, 14, 15, 9}, {1, 4}, DType::I64)}});
  auto [code, out] = tessera_cli("generate --model " + model.string() + " --input-ids " +
                                 (dir / "in.safetensors").string() + " --max-new-tokens 2");
  EXPECT_NE(code, 0);
  EXPECT_NE(out.find((model / "model.safetensors").string() + ": checksum mismatch against SHA256SUMS"),
            std::string::npos) << out;
  EXPECT_EQ(generated_ids(dir, "--no-verify --model " + model.string()).size(), 6u);
  // Intact, it verifies and runs: the copy's own SHA256SUMS rewritten.
  write_sha256sums(model.string(), files_in(model.string()));
  std::tie(code, out) = tessera_cli("generate --model " + model.string() + " --input-ids " +
                                    (dir / "in.safetensors").string() + " --max-new-tokens 2");
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("file(s) match SHA256SUMS"), std::string::npos) << out;
  fs::remove_all(dir);
}

TEST(ModelIntegrity, GivenChecksumsReplaceSha256Sums) {
  const fs::path dir = temp_dir("given");
  const fs::path model = damaged_copy(dir);
  fs::remove(model / "SHA256SUMS");
  const std::string actual = checkpoint::sha256_file((model / "model.safetensors").string());
  std::string wrong = actual;
  wrong[0] = wrong[0] == '0' ? '1' : '0';
  const auto load = [&](const std::string& sum) {
    inference::load_inference_model({.model = model.string(), .checksums = {{"model.safetensors", sum}}});
  };
  EXPECT_EQ(error_of([&] { load(actual); }), kNoError);
  EXPECT_EQ(error_of([&] { load(wrong); }),
            (model / "model.safetensors").string() + ": checksum mismatch against checksums (the file is damaged or "
            "was changed; refusing to load it; --no-verify skips the check)");
  EXPECT_EQ(error_of([&] {
              inference::load_inference_model({.model = model.string(), .checksums = {{"missing.bin", actual}}});
            }),
            (model / "missing.bin").string() + ": listed in checksums but missing (use --no-verify to skip the check)");
  EXPECT_EQ(error_of([&] {
              inference::load_inference_model(
                  {.model = model.string(), .verify = false, .checksums = {{"model.safetensors", wrong}}});
            }),
            kNoError);
  fs::remove_all(dir);
}

TEST(ModelIntegrity, GenerateAdapterRunsTheAdaptedModel) {
  const fs::path dir = temp_dir("adapter");
  const std::vector<int64_t> prompt{3, 14, 15, 9, 26};
  save_safetensors((dir / "in.safetensors").string(), {{"input_ids", Tensor::from_vector(prompt, {1, 5}, DType::I64)}});
  CpuModel m = cpu_model("llama_gqa");
  const lora::AdapterSpec spec = lora::resolve({.r = 4, .alpha = 16}, m.loaded.config);
  uint64_t counter = 0;
  lora::write_peft_adapter((dir / "adapter").string(), m.loaded.config, spec, "llama_gqa", [&](const ParamSpec& p) {
    Tensor t = Tensor::empty(p.shape, DType::F32);
    ops::fill_normal(t, 5, counter, 0.0f, 0.3f);
    counter += static_cast<uint64_t>(t.numel());
    return t;
  }, DType::F32);
  const std::vector<int64_t> adapted =
      generated_ids(dir, "--model " + parity_model_dir("llama_gqa") + " --adapter " + (dir / "adapter").string());
  const std::vector<int64_t> plain = generated_ids(dir, "--model " + parity_model_dir("llama_gqa"));
  // The adapted model's greedy tokens, by full forwards.
  LoadedModel with = m.loaded;
  lora::attach_adapter(with.params, with.config, lora::read_peft_adapter((dir / "adapter").string(), with.config),
                       DType::F32, Device::cpu());
  std::vector<int32_t> seq(prompt.begin(), prompt.end());
  std::vector<int64_t> want;
  for (int t = 0; t < 6; ++t) {
    const std::vector<float> logits = full_forward_next_logits(with, seq);
    seq.push_back(static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin()));
    want.push_back(seq.back());
  }
  EXPECT_EQ(adapted, want);
  EXPECT_NE(adapted, plain) << "the adapter changes nothing: the test would not see it ignored";
  fs::remove_all(dir);
}
