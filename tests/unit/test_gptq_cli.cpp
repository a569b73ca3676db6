// `tessera quantize --method gptq` end to end: a tiny model trained on README.md and quantized by
// GPTQ (calibrated on README.md's paragraphs; projections and lm_head) costs less `tessera eval`
// loss on README.md's start than the same model quantized by RTN, with and without act-order,
// summed over int4 (symmetric and asymmetric) and q4_0; the GPTQ
// checkpoint loads like any other; bad flags and calibration files are one clear error each.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "run_command.h"
#include "test_dir.h"
#include "tiny_model.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr auto run = tessera::testing_util::tessera_cli;  // {exit code, output}

fs::path temp_dir() { return tessera::testing_util::fresh_test_dir("tessera_gptq"); }

// README.md's paragraphs as {"text": ...} lines: calibration data like the training data.
fs::path readme_jsonl(const fs::path& dir) {
  std::ifstream in(TESSERA_SOURCE_DIR "/README.md");
  std::ofstream out(dir / "calib.jsonl");
  std::string line, paragraph;
  auto flush = [&] {
    if (paragraph.size() > 40) out << json{{"text", paragraph}}.dump() << "\n";
    paragraph.clear();
  };
  while (std::getline(in, line)) {
    if (line.empty()) flush();
    else paragraph += (paragraph.empty() ? "" : "\n") + line;
  }
  flush();
  return dir / "calib.jsonl";
}

// The first 20 kB of README.md: what the loss is measured on.
fs::path readme_head(const fs::path& dir) {
  std::ifstream in(TESSERA_SOURCE_DIR "/README.md");
  std::string text(20000, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  std::ofstream(dir / "eval.txt") << text;
  return dir / "eval.txt";
}

double eval_loss(const fs::path& model, const fs::path& data) {
  auto [code, out] = run("eval --model " + model.string() + " --tokenizer bytes --data " + data.string() +
                         " --seq-len 128 --batch-size 32 --json");
  EXPECT_EQ(code, 0) << out;
  std::istringstream lines(out);
  std::string line, last;
  while (std::getline(lines, line))
    if (!line.empty() && line[0] == '{') last = line;
  return last.empty() ? 0.0 : json::parse(last)["loss"].get<double>();
}

}  // namespace

TEST(GptqCli, TinyModelEvaluatesBelowRoundToNearest) {
  const fs::path dir = temp_dir();
  auto [code, log] = run("train " TESSERA_SOURCE_DIR "/configs/tiny-cpu.yaml --set data.train=" TESSERA_SOURCE_DIR
                         "/README.md --set log.metrics_file= --set train.steps=150 --set train.lr=1e-2 --set train.device=cpu"
                         " --set model.init.intermediate_size=192 --set model.init.tie_word_embeddings=false"
                         " --set checkpoint.every_steps=150"
                         " --set checkpoint.dir=" + (dir / "ckpt").string());
  ASSERT_EQ(code, 0) << log;
  const fs::path ckpt = dir / "ckpt/step-150", calib = readme_jsonl(dir), data = readme_head(dir);
  const double full = eval_loss(ckpt, data);
  double cost[3] = {0, 0, 0};  // summed over the schemes: rtn, gptq, gptq act-order
  for (const std::string scheme : {"int4", "int4 --group-size 64 --asymmetric", "q4_0"}) {
    SCOPED_TRACE(scheme);
    const std::string tag = std::to_string(std::hash<std::string>{}(scheme));
    // lm_head too: a model this small leans on it, and GPTQ quantizes it against the final norm's outputs.
    const std::string base =
        "quantize --checkpoint " + ckpt.string() + " --scheme " + scheme + " --modules all-linear lm_head --dtype fp32";
    std::tie(code, log) = run(base + " --out " + (dir / ("rtn" + tag)).string());
    ASSERT_EQ(code, 0) << log;
    std::tie(code, log) = run(base + " --method gptq --calib " + calib.string() +
                              " --calib-samples 32 --calib-seq-len 128 --out " + (dir / ("gptq" + tag)).string());
    ASSERT_EQ(code, 0) << log;
    EXPECT_NE(log.find("by GPTQ"), std::string::npos) << log;
    EXPECT_NE(log.find("gptq: layer 2 of 2 quantized"), std::string::npos) << log;
    std::tie(code, log) = run(base + " --method gptq --act-order --gptq-block 32 --calib " + calib.string() +
                              " --calib-samples 32 --calib-seq-len 128 --out " + (dir / ("act" + tag)).string());
    ASSERT_EQ(code, 0) << log;
    const double rtn = eval_loss(dir / ("rtn" + tag), data), gptq = eval_loss(dir / ("gptq" + tag), data),
                 act = eval_loss(dir / ("act" + tag), data);
    std::printf("%s: eval loss full %.5f  rtn %.5f  gptq %.5f  gptq act-order %.5f\n", scheme.c_str(), full, rtn, gptq,
                act);
    cost[0] += rtn - full, cost[1] += gptq - full, cost[2] += act - full;
  }
  // What quantization costs, summed over the three grids: one grid's cost on a model this small is
  // about 1e-3 and may fall within the noise of a CPU training run (which varies a little with the
  // load), the sum does not.
  std::printf("summed loss cost: rtn %.5f  gptq %.5f  gptq act-order %.5f\n", cost[0], cost[1], cost[2]);
  EXPECT_GT(cost[0], 0.0);  // the model is trained enough for RTN's rounding to cost something
  EXPECT_LT(cost[1], cost[0]);
  EXPECT_LT(cost[2], cost[0]);
}

TEST(GptqCli, BadFlagsAndCalibrationFilesAreOneClearError) {
  const fs::path dir = temp_dir();
  const json config = {{"model_type", "llama"},    {"vocab_size", 300},      {"hidden_size", 64},
                       {"intermediate_size", 128}, {"num_hidden_layers", 1}, {"num_attention_heads", 2},
                       {"num_key_value_heads", 1}, {"max_position_embeddings", 64}, {"rms_norm_eps", 1e-5}};
  tessera::testing_util::write_tiny_model(dir / "model", config, TESSERA_TEST_DATA "/tokenizer/tiny_spm", 5);
  std::ofstream(dir / "empty.jsonl") << "";
  std::ofstream(dir / "bad.jsonl") << "{\"text\": \"a line\"}\nnot json\n";
  const std::string base = "quantize --model " + (dir / "model").string() + " --scheme int4 --out " +
                           (dir / "out").string();
  struct Case {
    std::string flags, error;
  };
  for (const Case& c : {
           Case{"--calib " + (dir / "empty.jsonl").string(), "--calib is for --method gptq (the method is rtn)"},
           Case{"--act-order", "--act-order is for --method gptq"},
           Case{"--method gptq", "--method gptq: --calib FILE.jsonl is needed"},
           Case{"--method gptq --calib " + (dir / "missing.jsonl").string(), "missing.jsonl: no such file"},
           Case{"--method gptq --calib " + (dir / "empty.jsonl").string(), "empty.jsonl"},
           Case{"--method gptq --calib " + (dir / "bad.jsonl").string(), "bad.jsonl"},
           Case{"--method gptq --calib " + (dir / "empty.jsonl").string() + " --calib-samples 0", "--calib-samples 0: must be positive"},
           Case{"--method gptq --calib " + (dir / "empty.jsonl").string() + " --gptq-damp 0", "--gptq-damp"},
           Case{"--method gptq --calib " + (dir / "empty.jsonl").string() + " --gptq-block -4", "--gptq-block -4: must be positive"},
           Case{"--method awq", "--method"},
       }) {
    SCOPED_TRACE(c.flags);
    auto [code, log] = run(base + " " + c.flags);
    EXPECT_NE(code, 0) << log;
    EXPECT_NE(log.find(c.error), std::string::npos) << log;
    EXPECT_FALSE(fs::exists(dir / "out")) << "nothing is written on an error";
  }
}
