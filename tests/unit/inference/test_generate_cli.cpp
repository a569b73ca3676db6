// `tessera generate` end to end: ids in and out, text prompts (plain, --chat, JSONL prompt and
// messages lines agree with each other), and its errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../../inference_models.h"
#include "../../run_command.h"
#include "../../tiny_model.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"

using namespace tessera;
using namespace tessera::testing_util;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("tessera-generate-" + name + "-" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::vector<nlohmann::json> read_jsonl(const fs::path& path) {
  std::ifstream in(path);
  std::vector<nlohmann::json> out;
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

// A one-layer Qwen3 with the real Qwen3 tokenizer (its chat template is detected from it).
fs::path tiny_qwen3(const fs::path& dir) {
  write_tiny_model(dir,
                   {{"model_type", "qwen3"}, {"vocab_size", 151936}, {"hidden_size", 32}, {"intermediate_size", 64},
                    {"num_hidden_layers", 1}, {"num_attention_heads", 2}, {"num_key_value_heads", 1},
                    {"head_dim", 16}, {"max_position_embeddings", 256}, {"tie_word_embeddings", true},
                    {"eos_token_id", 151645}},
                   std::string(TESSERA_TEST_DATA) + "/tokenizers/qwen3", 11, 0.5f);
  return dir;
}

}  // namespace

// --input-ids in, --output safetensors out: generated int64 [batch, new tokens], the engine's
// greedy tokens (the argmax of full forwards, tested in test_generator.cpp) for each row.
TEST(GenerateCli, InputIdsToSafetensors) {
  const fs::path dir = temp_dir("ids");
  const std::string model = parity_model_dir("llama_gqa");
  const std::vector<int64_t> ids{3, 14, 15, 9, 26, 5, 35, 8, 9, 7, 9, 32};
  save_safetensors((dir / "in.safetensors").string(), {{"input_ids", Tensor::from_vector(ids, {2, 6}, DType::I64)}});
  const auto [code, out] = tessera_cli("generate --model " + model + " --input-ids " + (dir / "in.safetensors").string() +
                                       " --output " + (dir / "out.safetensors").string() +
                                       " --temperature 0 --max-new-tokens 9");
  ASSERT_EQ(code, 0) << out;
  SafetensorsFile file = SafetensorsFile::open((dir / "out.safetensors").string());
  const Tensor generated = file.tensor("generated").clone();
  ASSERT_EQ(generated.dtype(), DType::I64);
  ASSERT_EQ(generated.shape(), (Shape{2, 9}));
  CpuModel m = cpu_model("llama_gqa");
  for (int64_t row = 0; row < 2; ++row) {
    std::vector<int32_t> seq(ids.begin() + row * 6, ids.begin() + row * 6 + 6);
    for (int64_t t = 0; t < 9; ++t) {
      const std::vector<float> logits = full_forward_next_logits(m.loaded, seq);
      const int32_t want = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      ASSERT_EQ(generated.data_as<int64_t>()[row * 9 + t], want) << "row " << row << " token " << t;
      seq.push_back(want);
    }
  }
  fs::remove_all(dir);
}

// Text prompts: --prompt streams the same text the JSONL output holds for the same prompt; --chat
// equals a messages line with one user turn; sampled runs with a seed repeat.
TEST(GenerateCli, TextPromptsJsonlAndChat) {
  const fs::path dir = temp_dir("text");
  const std::string model = tiny_qwen3(dir / "model").string();
  std::ofstream(dir / "in.jsonl") << R"({"prompt": "The capital of France is"})" "\n"
                                  << R"({"messages": [{"role": "user", "content": "The capital of France is"}]})" "\n";
  const std::string common = "generate --model " + model + " ";
  auto [code, out] = tessera_cli(common + "--max-new-tokens 6 --temperature 0 --input " + (dir / "in.jsonl").string() + " --output " +
                                 (dir / "out.jsonl").string());
  ASSERT_EQ(code, 0) << out;
  const std::vector<nlohmann::json> lines = read_jsonl(dir / "out.jsonl");
  ASSERT_EQ(lines.size(), 2u);
  for (const auto& l : lines) {
    EXPECT_EQ(l["ids"].size(), l["finish_reason"] == "length" ? 6u : l["ids"].size());
    EXPECT_TRUE(l["finish_reason"] == "length" || l["finish_reason"] == "stop");
    EXPECT_TRUE(l["text"].is_string());
  }
  // The plain prompt and the chat prompt differ (the template wraps the second).
  std::tie(code, out) = tessera_cli(common + "--max-new-tokens 6 --temperature 0 --prompt 'The capital of France is'");
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find(lines[0]["text"].get<std::string>()), std::string::npos) << out;
  std::tie(code, out) = tessera_cli(common + "--max-new-tokens 6 --temperature 0 --chat --input " + (dir / "in.jsonl").string() +
                                    " --output " + (dir / "chat.jsonl").string());
  ASSERT_EQ(code, 0) << out;
  const std::vector<nlohmann::json> chat = read_jsonl(dir / "chat.jsonl");
  EXPECT_EQ(chat[0]["ids"], lines[1]["ids"]);  // --chat on a prompt line == the messages line
  EXPECT_EQ(chat[1]["ids"], lines[1]["ids"]);
  // Seeded sampling repeats; another seed gives other tokens.
  auto sampled = [&](const std::string& seed) {
    const fs::path o = dir / ("seed" + seed + ".jsonl");
    const auto [c, text] = tessera_cli(common + "--temperature 1 --max-new-tokens 12 --seed " + seed + " --input " +
                                       (dir / "in.jsonl").string() + " --output " + o.string());
    EXPECT_EQ(c, 0) << text;
    return read_jsonl(o);
  };
  const auto a = sampled("5"), b = sampled("5"), c = sampled("6");
  EXPECT_EQ(a[0]["ids"], b[0]["ids"]);
  EXPECT_EQ(a[1]["ids"], b[1]["ids"]);
  EXPECT_NE(a[0]["ids"], c[0]["ids"]);
  fs::remove_all(dir);
}

TEST(GenerateCli, ClearErrors) {
  const fs::path dir = temp_dir("errors");
  const std::string model = parity_model_dir("llama_gqa");
  auto fails_with = [](const std::string& args, const std::string& message) {
    const auto [code, out] = tessera_cli("generate " + args);
    EXPECT_NE(code, 0) << args;
    EXPECT_NE(out.find(message), std::string::npos) << args << "\n" << out;
  };
  fails_with("--model " + model, "exactly one of --prompt, --input and --input-ids");
  fails_with("--model " + model + " --prompt a --input b.jsonl", "exactly one of");
  fails_with("--model /nonexistent/model --prompt hi", "/nonexistent/model: no such file or folder");
  fails_with("--model " + model + " --prompt hi", "has no tokenizer");
  std::ofstream(dir / "bad.jsonl") << "{\"prompt\": 1}\n";
  fails_with("--model " + model + " --input-ids " + (dir / "bad.jsonl").string(), "bad.jsonl");
  save_safetensors((dir / "ids.safetensors").string(),
                   {{"input_ids", Tensor::from_vector(std::vector<int64_t>{1, 64}, {1, 2}, DType::I64)}});
  save_safetensors((dir / "ok.safetensors").string(),
                   {{"input_ids", Tensor::from_vector(std::vector<int64_t>{1, 63}, {1, 2}, DType::I64)}});
  fails_with("--model " + model + " --input-ids " + (dir / "ok.safetensors").string() + " --temperature -1",
             "--temperature: -1 is negative");
  fails_with("--model " + model + " --input-ids " + (dir / "ids.safetensors").string(),
             "outside the vocabulary of 64");
  fs::remove_all(dir);
}
