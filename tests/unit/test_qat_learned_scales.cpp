// QAT with learned scales, end to end on the CPU (fp32): a job with quant.qat.learnable_scales
// (full training on asymmetric int4 from step 2; LoRA on q4_0) exports a quantized checkpoint
// whose `tessera eval` loss is the job's own eval loss after its last step (1e-6), although the
// scales moved (the same job with fixed scales ends elsewhere); the q4_0 job's GGUF holds the same
// projections bit for bit; and what cannot learn scales is one config error.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/export_source.h"
#include "engine/gguf_loader.h"
#include "engine/model_weights.h"
#include "model/transformer_params.h"
#include "run_command.h"

using namespace tessera;
using namespace tessera::testing_util;
namespace fs = std::filesystem;

namespace {

const std::string kEvalData = TESSERA_TEST_DATA "/jsonl/completion.jsonl";

fs::path temp_dir(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / (name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  return dir;
}

std::string job_command(const fs::path& dir, const std::string& extra) {
  return "train " TESSERA_SOURCE_DIR "/configs/tiny-cpu.yaml --set data.train=" TESSERA_SOURCE_DIR
         "/README.md --set data.eval=" + kEvalData +
         " --set data.format=auto --set data.seq_len=32 --set train.micro_batch_size=1 --set train.device=cpu"
         " --set train.lr=1e-2 --set model.init.intermediate_size=192 --set train.steps=4"
         " --set checkpoint.dir=" + (dir / "ckpt").string() + " --set log.metrics_file=" +
         (dir / "metrics.jsonl").string() + " " + extra;
}

nlohmann::json eval(const std::string& model) {
  const CommandResult r = run_tessera("eval --json --device cpu --tokenizer bytes --seq-len 32 --model " + model +
                                      " --data " + kEvalData + " 2>/dev/null");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return nlohmann::json::parse(r.output.substr(r.output.rfind('{')));
}

// The job's eval loss after step 4, the whole eval file evaluated.
double trained_eval_loss(const fs::path& dir, const std::string& extra, int64_t sequences) {
  fs::remove_all(dir / "ckpt");
  fs::remove(dir / "metrics.jsonl");
  const CommandResult r =
      run_tessera(job_command(dir, extra) + " --set eval.every_steps=4 --set eval.batches=" + std::to_string(sequences));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::ifstream metrics(dir / "metrics.jsonl");
  for (std::string line; std::getline(metrics, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("eval_loss") && j["step"] == 4) return j["eval_loss"];
  }
  ADD_FAILURE() << "no eval_loss at step 4: " << r.output;
  return -1;
}

class QatLearnedScales : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

}  // namespace

TEST_P(QatLearnedScales, ExportReproducesTheJobsEvalLoss) {
  const auto [name, extra] = GetParam();
  const fs::path dir = temp_dir("qat-learned-" + name);
  const std::string learned = extra + " --set quant.qat.learnable_scales=true";
  CommandResult r = run_tessera(job_command(dir, learned) + " --set train.stop_after=1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("learned scales"), std::string::npos) << r.output;
  const int64_t sequences = eval((dir / "ckpt/step-1").string())["sequences"];
  ASSERT_GT(sequences, 1);

  const double fixed = trained_eval_loss(dir, extra, sequences);
  const double trained = trained_eval_loss(dir, learned, sequences);
  ASSERT_GT(trained, 0);
  EXPECT_GT(std::abs(trained - fixed), 1e-6) << "learning the scales changed nothing";

  r = run_tessera("export --checkpoint " + (dir / "ckpt/step-4").string() + " --format quantized --dtype fp32 --out " +
                  (dir / "quantized").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NEAR(eval((dir / "quantized").string())["loss"].get<double>(), trained, 1e-6);

  if (extra.find("q4_0") != std::string::npos) {
    // The GGUF's projections are the quantized checkpoint's, bit for bit (rows back in HF's order).
    r = run_tessera("export --checkpoint " + (dir / "ckpt/step-4").string() + " --format gguf --quant q4_0 --out " +
                    (dir / "model.gguf").string());
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const ExportSource source = ExportSource::checkpoint((dir / "ckpt/step-4").string());
    const ModelWeights quantized = ModelWeights::open((dir / "quantized").string(), source.config());
    LoadedModel gguf = load_gguf_model((dir / "model.gguf").string(), DType::F32, Device::cpu());
    int compared = 0;
    for (const ParamSpec& p : source.params()) {
      if (!quantized.quantization()->selects(p.name)) continue;
      const Tensor want = quantized.tensor(p), got = param_slot(gguf.params, p.name);
      ASSERT_EQ(got.nbytes(), want.nbytes()) << p.name;
      EXPECT_EQ(std::memcmp(got.data(), want.data(), want.nbytes()), 0) << p.name;
      ++compared;
    }
    EXPECT_EQ(compared, 14);
  }
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(
    Jobs, QatLearnedScales,
    ::testing::Values(std::tuple{"int4_asymmetric", "--set quant.qat.weights=int4 --set quant.qat.symmetric=false"
                                                    " --set quant.qat.start_step=2"},
                      std::tuple{"lora_q4_0", "--set quant.qat.weights=q4_0 --set lora.r=4"}),
    [](const auto& info) { return std::get<0>(info.param); });

TEST(QatLearnedScalesConfig, EmbeddingsAndHeadCannotLearnScales) {
  const CommandResult r = run_tessera("train " TESSERA_SOURCE_DIR "/configs/tiny-cpu.yaml --set data.train=" TESSERA_SOURCE_DIR
                                      "/README.md --set quant.qat.learnable_scales=true"
                                      " --set quant.qat.modules=[all-linear,lm_head] --set train.steps=1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("quant.qat.learnable_scales: learns the scales of projections only, and quant.qat.modules "
                          "names lm_head"),
            std::string::npos)
      << r.output;
}
