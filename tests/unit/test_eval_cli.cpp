// `tessera eval` through the binary: the trainer's eval loss for the same weights, the JSON shape,
// the same numbers from a checkpoint and from its export, SHA256SUMS written by export and
// verified before use, and clear errors for bad input.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "run_command.h"

using namespace tessera;
namespace fs = std::filesystem;

namespace {

constexpr auto run = testing_util::tessera_cli;  // {exit code, output}

const std::string kEvalData = TESSERA_TEST_DATA "/jsonl/completion.jsonl";

// The JSON object of a `tessera eval --json` run (logs go to stderr, the object is its last line).
nlohmann::json eval_json(const std::string& args) {
  auto [code, out] = run("eval --json --device cpu " + args + " 2>/dev/null");
  EXPECT_EQ(code, 0) << out;
  if (code != 0) return {};
  std::istringstream lines(out);
  std::string line, last;
  while (std::getline(lines, line))
    if (!line.empty()) last = line;
  return nlohmann::json::parse(last);
}

class EvalCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // A folder per process: ctest runs each case as a process of its own, two at a time.
    dir_ = fs::path(::testing::TempDir()) / ("eval_cli_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    // Two steps of the tiny model on the CPU; after step 2 the trainer evaluates completion.jsonl
    // once over, one sequence per batch (eval.batches = its sequence count, found by eval itself on
    // the step-1 checkpoint), then saves step-2: the weights `tessera eval` reads.
    const std::string job = "train " TESSERA_SOURCE_DIR "/configs/tiny-cpu.yaml --set data.train=" TESSERA_SOURCE_DIR
                            "/README.md --set data.eval=" + kEvalData +
                            " --set data.format=auto --set data.seq_len=32 --set train.micro_batch_size=1"
                            " --set train.device=cpu --set checkpoint.every_steps=1 --set checkpoint.dir=" +
                            (dir_ / "ckpt").string() + " --set log.metrics_file=" + (dir_ / "metrics.jsonl").string();
    // One 2-step schedule stopped after step 1 (a changed horizon would be refused on resuming).
    auto [code, out] = run(job + " --set train.steps=2 --set train.stop_after=1");
    ASSERT_EQ(code, 0) << out;
    sequences_ = eval_json("--model " + (dir_ / "ckpt/step-1").string() + " --data " + kEvalData)["sequences"];
    ASSERT_GT(sequences_, 1);
    std::tie(code, out) = run(job + " --set train.steps=2 --set eval.every_steps=2 --set eval.batches=" +
                              std::to_string(sequences_));
    ASSERT_EQ(code, 0) << out;
  }

  static void TearDownTestSuite() { fs::remove_all(dir_); }

  static inline fs::path dir_;
  static inline int64_t sequences_ = 0;
};

}  // namespace

TEST_F(EvalCli, EqualsTheTrainersEvalLossForTheSameWeights) {
  double trainer_loss = -1;
  std::ifstream metrics(dir_ / "metrics.jsonl");
  for (std::string line; std::getline(metrics, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("eval_loss") && j["step"] == 2) trainer_loss = j["eval_loss"];
  }
  ASSERT_GT(trainer_loss, 0) << "no eval_loss at step 2 in metrics.jsonl";
  const nlohmann::json r = eval_json("--model " + (dir_ / "ckpt/step-2").string() + " --data " + kEvalData);
  // The job's data section applies (seq_len 32, the format), so the packing is the trainer's.
  EXPECT_EQ(r["seq_len"], 32);
  EXPECT_EQ(r["sequences"], sequences_);
  EXPECT_NEAR(r["loss"].get<double>(), trainer_loss, 2e-6 + 1e-6 * trainer_loss);  // metrics.jsonl: 6 decimals
  EXPECT_NEAR(r["perplexity"].get<double>(), std::exp(r["loss"].get<double>()), 1e-9 * r["perplexity"].get<double>());
  // Only completions are targets: fewer tokens than the sequences hold.
  EXPECT_GT(r["tokens"].get<int64_t>(), 0);
  EXPECT_LT(r["tokens"].get<int64_t>(), sequences_ * 32);
  // Batching does not change the numbers (beyond float rounding).
  const nlohmann::json b = eval_json("--model " + (dir_ / "ckpt/step-2").string() + " --data " + kEvalData +
                                     " --batch-size 3");
  EXPECT_EQ(b["tokens"], r["tokens"]);
  EXPECT_NEAR(b["loss"].get<double>(), r["loss"].get<double>(), 1e-5);
}

TEST_F(EvalCli, JsonShapeAndTextOutput) {
  const nlohmann::json r = eval_json("--model " + (dir_ / "ckpt/step-2").string() + " --data " + kEvalData);
  ASSERT_TRUE(r.is_object());
  for (const char* key : {"loss", "perplexity", "tokens", "sequences", "seq_len"}) EXPECT_TRUE(r.contains(key)) << key;
  EXPECT_TRUE(r["loss"].is_number_float());
  EXPECT_TRUE(r["tokens"].is_number_integer());
  EXPECT_EQ(r.size(), 5u);
  auto [code, out] = run("eval --device cpu --model " + (dir_ / "ckpt/step-2").string() + " --data " + kEvalData +
                         " 2>/dev/null");
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("loss "), std::string::npos) << out;
  EXPECT_NE(out.find("perplexity "), std::string::npos) << out;
  EXPECT_NE(out.find(std::to_string(r["tokens"].get<int64_t>()) + " tokens"), std::string::npos) << out;
}

TEST_F(EvalCli, AnExportGivesTheSameNumbersAndIsVerified) {
  const fs::path exported = dir_ / "export";
  fs::remove_all(exported);
  auto [code, out] = run("export --checkpoint " + (dir_ / "ckpt/step-2").string() + " --out " + exported.string() +
                         " --dtype fp32");
  ASSERT_EQ(code, 0) << out;
  // SHA256SUMS lists every file the export wrote, in sha256sum's format.
  ASSERT_TRUE(fs::exists(exported / "SHA256SUMS"));
  std::ifstream sums(exported / "SHA256SUMS");
  std::vector<std::string> listed;
  for (std::string line; std::getline(sums, line);) {
    ASSERT_GT(line.size(), 66u) << line;
    EXPECT_EQ(line.substr(64, 2), "  ") << line;
    listed.push_back(line.substr(66));
  }
  EXPECT_NE(std::find(listed.begin(), listed.end(), "model.safetensors"), listed.end());
  EXPECT_NE(std::find(listed.begin(), listed.end(), "config.json"), listed.end());
  auto [sc, sout] = testing_util::run_command("cd " + exported.string() + " && sha256sum -c --quiet SHA256SUMS");
  EXPECT_EQ(sc, 0) << sout;

  // The byte tokenizer is not in the folder: an HF folder needs its tokenizer.json.
  std::tie(code, out) = run("eval --device cpu --model " + exported.string() + " --data " + kEvalData);
  EXPECT_NE(code, 0);
  EXPECT_NE(out.find("no tokenizer.json"), std::string::npos) << out;

  // With the job's tokenizer named, the fp32 export evaluates to the checkpoint's numbers.
  const nlohmann::json ckpt = eval_json("--model " + (dir_ / "ckpt/step-2").string() + " --data " + kEvalData);
  const nlohmann::json hf = eval_json("--model " + exported.string() + " --tokenizer bytes --seq-len 32 --data " +
                                      kEvalData);
  EXPECT_EQ(hf["tokens"], ckpt["tokens"]);
  EXPECT_NEAR(hf["loss"].get<double>(), ckpt["loss"].get<double>(), 1e-9);
}

TEST_F(EvalCli, ADamagedWeightFileIsRefusedNamingIt) {
  const fs::path exported = dir_ / "export-damaged";
  fs::remove_all(exported);
  auto [code, out] = run("export --checkpoint " + (dir_ / "ckpt/step-2").string() + " --out " + exported.string());
  ASSERT_EQ(code, 0) << out;
  {  // bf16: the last two values of the last tensor
    std::fstream f(exported / "model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-4, std::ios::end);
    f.write("\x00\x3c\x00\x3c", 4);
  }
  std::tie(code, out) = run("eval --device cpu --model " + exported.string() + " --data " + kEvalData);
  EXPECT_NE(code, 0);
  EXPECT_NE(out.find((exported / "model.safetensors").string() + ": checksum mismatch against SHA256SUMS"),
            std::string::npos) << out;
  // --no-verify skips the check (the damage: the last two weights set to 2^-7).
  std::tie(code, out) = run("eval --device cpu --no-verify --tokenizer bytes --model " + exported.string() +
                            " --data " + kEvalData);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("not verified (--no-verify)"), std::string::npos) << out;

  // A damaged checkpoint is refused too (its COMPLETE manifest), naming the file.
  const fs::path ckpt = dir_ / "ckpt-damaged";
  fs::remove_all(ckpt);
  fs::copy(dir_ / "ckpt/step-2", ckpt);
  {
    std::fstream f(ckpt / "state.h5", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-4, std::ios::end);
    f.write("\x01\x02\x03\x04", 4);
  }
  std::tie(code, out) = run("eval --device cpu --model " + ckpt.string() + " --data " + kEvalData);
  EXPECT_NE(code, 0);
  EXPECT_NE(out.find(ckpt.string() + ": not an intact checkpoint: state.h5: checksum mismatch"), std::string::npos)
      << out;
}

TEST_F(EvalCli, BadInputIsOneClearError) {
  const std::string model = " --model " + (dir_ / "ckpt/step-2").string();
  const fs::path bad = dir_ / "bad.jsonl";
  std::ofstream(bad) << "{\"text\": \"fine\"}\n{not json\n";
  const fs::path empty_dir = dir_ / "empty";
  fs::create_directories(empty_dir);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"eval --data " + kEvalData, "--model is required"},
      {"eval" + model, "--data is required"},
      {"eval --model /nonexistent/model --data " + kEvalData, "--model /nonexistent/model: no such file or folder"},
      {"eval --model " + empty_dir.string() + " --data " + kEvalData, "neither a Hugging Face model folder"},
      {"eval" + model + " --data /nonexistent.jsonl", "--data /nonexistent.jsonl: no such file or folder"},
      {"eval" + model + " --data " + bad.string(), bad.string() + ":2"},
      {"eval" + model + " --data " + empty_dir.string(), "not a prepare-data folder"},
      {"eval" + model + " --data " + kEvalData + " --seq-len 100000", "longer than the model's context"},
      {"eval" + model + " --data " + kEvalData + " --seq-len 0", "--seq-len"},
  };
  for (const auto& [args, message] : cases) {
    auto [code, out] = run(args + " --device cpu");
    EXPECT_NE(code, 0) << args;
    EXPECT_NE(out.find(message), std::string::npos) << args << "\n" << out;
  }
}
