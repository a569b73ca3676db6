// llama.cpp loads what we write and computes what we compute: tiny random llama / qwen2 / qwen3
// models with the real Llama 3 and Qwen3 vocabularies are exported to GGUF, and llama.cpp
// (node-llama-cpp 3.21.1's prebuilt CPU build, tests/llamacpp/run.mjs) tokenizes prompts and
// continues them greedily on the same file as Tessera does (the GGUF loaded back, repeated
// forward). Tokenization must match exactly, and so must the f32 continuations (barring a top-1
// within float rounding of the second); q8_0 and q4_0 continuations must match wherever our top-1
// margin is clear of what their arithmetic can move (llama.cpp quantizes the activations to 8
// bits for those dot products, we do not). `tessera generate --model FILE.gguf` on the prompts as
// text (the file's tokenizer, packed projections, the paged cache) must give the same greedy
// tokens, and its agreement with llama.cpp is reported.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/export_gguf.h"
#include "engine/gguf_loader.h"
#include "io/gguf_reader.h"
#include "io/tokenizer/tokenizer.h"
#include "model/token_batch.h"
#include "model/transformer.h"
#include "run_command.h"
#include "tiny_model.h"

namespace fs = std::filesystem;
using namespace tessera;
using nlohmann::json;

namespace {

const fs::path kNodeDir = TESSERA_SOURCE_DIR "/tests/llamacpp";
constexpr int kNewTokens = 12;

struct Case {
  std::string name, model_type, tokenizer;
  json config;
  std::vector<std::string> prompts;
};

std::vector<std::string> common_prompts() {
  return {"Hello, world! The quick brown fox jumps over the lazy dog.",
          "In 1984, 12345 apples cost $3.14159 (or 2,718.28 in total).",
          "Ünïcödé — naïve café, 東京タワー and emoji 🚀🎉",
          "  leading spaces,\ttabs\n\nand new lines   at the end  ",
          "don't won't I'm we'll they've she'd IT'S"};
}

Case make_case(const std::string& name) {
  json c = {{"vocab_size", 151936},     {"hidden_size", 64},          {"intermediate_size", 128},
            {"num_hidden_layers", 2},   {"num_attention_heads", 4},   {"num_key_value_heads", 2},
            {"max_position_embeddings", 512}, {"rms_norm_eps", 1e-6}, {"tie_word_embeddings", false}};
  std::vector<std::string> prompts = common_prompts();
  if (name == "llama") {
    c["model_type"] = "llama";
    c["vocab_size"] = 128256;
    c["rope_theta"] = 500000.0;
    c["rope_scaling"] = {{"rope_type", "llama3"},    {"factor", 8.0},  {"low_freq_factor", 1.0},
                         {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 64}};
    c["bos_token_id"] = 128000;
    c["eos_token_id"] = 128001;
    prompts.push_back("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>");
    return {name, "llama", "llama3", c, prompts};
  }
  c["model_type"] = name;
  c["rope_theta"] = 1000000.0;
  if (name == "qwen2") c["tie_word_embeddings"] = true;  // and q/k/v biases, as every qwen2
  if (name == "qwen3") c["head_dim"] = 32;               // != 64 / 4
  prompts.push_back("<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  return {name, name, "qwen3", c, prompts};
}

// Our next-token choice after each prefix of `input + continuation` (one forward: up to the first
// difference from llama.cpp's continuation, this is our greedy continuation) and its margin.
struct Choices {
  std::vector<int32_t> tokens;
  std::vector<float> margins;  // top-1 minus top-2 logit
};

Choices our_choices(const LoadedModel& model, const std::vector<int32_t>& input,
                    const std::vector<int32_t>& continuation) {
  std::vector<int32_t> ids = input;
  ids.insert(ids.end(), continuation.begin(), continuation.end() - 1);
  const Tensor t = Tensor::from_vector(ids, {1, static_cast<int64_t>(ids.size())}, DType::I32);
  const ModelOutput out = run_model(model.config, model.params, TokenBatch::causal_lm(t, Device::cpu()),
                                    /*want_logits=*/true, nullptr);
  const int64_t vocab = model.config.vocab_size;
  Choices c;
  for (size_t pos = input.size() - 1; pos < ids.size(); ++pos) {
    const float* row = out.logits.data_as<float>() + static_cast<int64_t>(pos) * vocab;
    const int32_t best = static_cast<int32_t>(std::max_element(row, row + vocab) - row);
    float second = -1e30f;
    for (int64_t v = 0; v < vocab; ++v)
      if (v != best) second = std::max(second, row[v]);
    c.tokens.push_back(best);
    c.margins.push_back(row[best] - second);
  }
  return c;
}

json run_llamacpp(const fs::path& gguf, const std::vector<std::string>& prompts, const fs::path& dir) {
  const fs::path request = dir / "request.json";
  std::ofstream(request) << json{{"prompts", prompts}, {"max_tokens", kNewTokens}}.dump();
  const auto r = testing_util::run_command("cd " + kNodeDir.string() + " && node run.mjs " + gguf.string() + " " +
                                           request.string() + " 2>" + (dir / "node.log").string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  const json out = json::parse(r.output, nullptr, false);
  EXPECT_FALSE(out.is_discarded()) << r.output;
  return out;
}

// `tessera generate` on the file, greedy, the prompts as text (the file's own tokenizer): the ids of
// each completion (it stops at an end-of-generation token).
std::vector<std::vector<int32_t>> run_generate(const fs::path& gguf, const std::vector<std::string>& prompts,
                                               const fs::path& dir) {
  const fs::path input = dir / "prompts.jsonl", output = dir / "generated.jsonl";
  {
    std::ofstream in(input);
    for (const std::string& p : prompts) in << json{{"prompt", p}}.dump() << '\n';
  }
  const auto [code, log] = testing_util::tessera_cli("generate --model " + gguf.string() + " --input " + input.string() +
                                                     " --max-new-tokens " + std::to_string(kNewTokens) +
                                                     " --temperature 0 --device cpu --output " + output.string());
  EXPECT_EQ(code, 0) << log;
  std::vector<std::vector<int32_t>> ids;
  std::ifstream out(output);
  for (std::string line; std::getline(out, line);) ids.push_back(json::parse(line).at("ids").get<std::vector<int32_t>>());
  EXPECT_EQ(ids.size(), prompts.size()) << log;
  return ids;
}

class LlamaCpp : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

}  // namespace

TEST_P(LlamaCpp, TokenizesAndContinuesAsWeDo) {
  if (!fs::exists(kNodeDir / "node_modules/node-llama-cpp/package.json"))
    GTEST_SKIP() << "node-llama-cpp is not installed: run scripts/setup-llamacpp.sh";
  const auto [name, quant] = GetParam();
  const Case c = make_case(name);
  const fs::path dir = fs::temp_directory_path() / ("tessera_llamacpp_" + name + "_" + quant + "_" +
                                                    std::to_string(::getpid()));
  fs::remove_all(dir);
  const std::string tokenizer_dir = TESSERA_TEST_DATA "/tokenizers/" + c.tokenizer;
  testing_util::write_tiny_model(dir / "model", c.config, tokenizer_dir, /*seed=*/17, /*std=*/0.25f);
  const fs::path gguf = dir / (name + "-" + quant + ".gguf");
  export_gguf({.model = (dir / "model").string(), .out = gguf.string(), .type = gguf::parse_tensor_type(quant)});

  const json cpp = run_llamacpp(gguf, c.prompts, dir);
  ASSERT_TRUE(cpp.contains("results")) << cpp.dump();
  const gguf::File file = gguf::File::open(gguf.string());
  const tok::Tokenizer ours = gguf_tokenizer(file);
  const tok::Tokenizer hf = tok::Tokenizer::from_file(tokenizer_dir);
  const LoadedModel model = load_gguf_model(gguf.string(), DType::F32, Device::cpu());
  ASSERT_EQ(cpp["add_bos"].get<bool>(), ours.add_bos_token().value_or(false));

  // A difference is allowed only where our top-1 leads by less than llama.cpp's arithmetic can
  // move a logit: float rounding in f32; for q8_0 / q4_0 its 8-bit activations as well.
  const float tolerance = quant == "q4_0" ? 0.5f : quant == "q8_0" ? 0.25f : 1e-4f;
  int agreed = 0, compared = 0, diverged = 0;
  float widest = 0;  // the largest margin at which llama.cpp chose differently
  std::vector<int> diverged_at(c.prompts.size(), kNewTokens);
  std::vector<Choices> ours_all;
  for (size_t i = 0; i < c.prompts.size(); ++i) {
    const json& result = cpp["results"][i];
    const auto theirs = result["tokens"].get<std::vector<int32_t>>();
    EXPECT_EQ(theirs, hf.encode(c.prompts[i], false)) << name << ": llama.cpp vs tokenizers on: " << c.prompts[i];
    EXPECT_EQ(theirs, ours.encode(c.prompts[i], false)) << name << ": llama.cpp vs the GGUF's tokenizer on: "
                                                        << c.prompts[i];
    std::vector<int32_t> input = theirs;
    if (cpp["add_bos"].get<bool>()) input.insert(input.begin(), cpp["bos"].get<int32_t>());
    const auto continuation = result["continuation"].get<std::vector<int32_t>>();
    ASSERT_EQ(continuation.size(), static_cast<size_t>(kNewTokens));
    const Choices ours_next = our_choices(model, input, continuation);
    ours_all.push_back(ours_next);
    // Up to the first difference: after it the two continue different texts.
    for (int t = 0; t < kNewTokens; ++t) {
      ++compared;
      if (continuation[t] == ours_next.tokens[t]) {
        ++agreed;
        continue;
      }
      ++diverged;
      diverged_at[i] = t;
      widest = std::max(widest, ours_next.margins[t]);
      EXPECT_LT(ours_next.margins[t], tolerance)
          << name << " " << quant << ": llama.cpp chose " << continuation[t] << " where our top-1 "
          << ours_next.tokens[t] << " leads by " << ours_next.margins[t] << " (prompt " << i << ", token " << t << ")";
      compared += kNewTokens - t - 1;
      break;
    }
  }
  std::cout << "[ llama.cpp ] " << name << " " << quant << ": greedy tokens agreeing " << agreed << " / " << compared
            << "; " << diverged << " of " << c.prompts.size() << " prompts diverge, at top-1 margins up to " << widest
            << "\n";

  // `tessera generate --model FILE.gguf` (the file's tokenizer, its projections packed, the paged
  // cache) continues each prompt as llama.cpp does up to where our forward first chose otherwise,
  // and takes our forward's choice there.
  const std::vector<std::vector<int32_t>> generated = run_generate(gguf, c.prompts, dir);
  int generate_agreed = 0, generate_compared = 0;
  for (size_t i = 0; i < std::min(generated.size(), c.prompts.size()); ++i) {
    const auto continuation = cpp["results"][i]["continuation"].get<std::vector<int32_t>>();
    const std::vector<int32_t>& ids = generated[i];
    bool same = true;
    for (size_t t = 0; t < std::min<size_t>(ids.size(), kNewTokens); ++t) {
      if (static_cast<int>(t) < diverged_at[i])
        EXPECT_EQ(ids[t], continuation[t]) << name << " " << quant << ": generate vs llama.cpp, prompt " << i
                                           << ", token " << t;
      else if (static_cast<int>(t) == diverged_at[i])
        EXPECT_EQ(ids[t], ours_all[i].tokens[t]) << name << " " << quant << ": generate vs our forward, prompt " << i;
      if (same) {
        ++generate_compared;
        same = ids[t] == continuation[t];
        generate_agreed += same;
      }
    }
  }
  std::cout << "[ llama.cpp ] " << name << " " << quant << ": tessera generate agrees with llama.cpp on "
            << generate_agreed << " / " << generate_compared << " greedy tokens (up to each first difference)\n";
  RecordProperty("generate_agreement", std::to_string(generate_agreed) + "/" + std::to_string(generate_compared));
  RecordProperty("greedy_agreement", std::to_string(agreed) + "/" + std::to_string(compared));
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Exports, LlamaCpp,
                         ::testing::Combine(::testing::Values("llama", "qwen2", "qwen3"),
                                            ::testing::Values("f32", "q8_0", "q4_0")),
                         [](const auto& info) { return std::get<0>(info.param) + "_" + std::get<1>(info.param); });
