// tessera train -> checkpoint -> resume -> export -> forward, through the binary, on the CPU.
#include <gtest/gtest.h>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "engine/checkpoint/state_file.h"
#include "engine/model_loader.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "kernels/ops.h"
#include "random_tensors.h"
#include "run_command.h"

using namespace tessera;
namespace fs = std::filesystem;

constexpr auto run = testing_util::tessera_cli;  // {exit code, output}

TEST(TrainCli, TrainCheckpointResumeExportForward) {
  const fs::path dir = fs::path(::testing::TempDir()) / "train_cli";
  fs::remove_all(dir);
  const std::string job = "train " TESSERA_SOURCE_DIR "/configs/tiny-cpu.yaml --set data.train=" TESSERA_SOURCE_DIR
                          "/README.md --set checkpoint.dir=" + (dir / "ckpt").string() +
                          " --set log.metrics_file=" + (dir / "metrics.jsonl").string() + " --set log.every_steps=1";
  auto [code, out] = run(job + " --set train.steps=5 --set train.stop_after=3 --set checkpoint.every_steps=2");
  ASSERT_EQ(code, 0) << out;
  EXPECT_TRUE(fs::exists(dir / "ckpt/step-2/COMPLETE"));
  EXPECT_TRUE(fs::exists(dir / "ckpt/step-3/COMPLETE"));

  std::tie(code, out) = run(job + " --set train.steps=5");
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("resumed from " + (dir / "ckpt/step-3").string() + " (step 3;"), std::string::npos) << out;
  EXPECT_NE(out.find("step 5/5"), std::string::npos) << out;
  EXPECT_NE(out.find(", norm "), std::string::npos) << "the log line splits the step: " << out;

  // Each step's time split: the update's two parts add up to it, the host's share holds the batches'.
  std::ifstream metrics(dir / "metrics.jsonl");
  int rows = 0;
  for (std::string line; std::getline(metrics, line);) {
    const nlohmann::json row = nlohmann::json::parse(line);
    if (!row.contains("tokens_per_s")) continue;
    ++rows;
    SCOPED_TRACE(line);
    for (const char* key : {"forward_backward_s", "update_s", "norm_s", "adamw_s", "host_s", "data_s", "behind_s"})
      EXPECT_GE(row.at(key).get<double>(), 0.0) << key;
    EXPECT_GT(row["forward_backward_s"].get<double>(), 0.0);
    EXPECT_NEAR(row["norm_s"].get<double>() + row["adamw_s"].get<double>(), row["update_s"].get<double>(), 1e-9);
    EXPECT_GE(row["host_s"].get<double>(), row["data_s"].get<double>());
    EXPECT_EQ(row["behind_s"].get<double>(), 0.0) << "nothing runs behind without zero.overlap_step";
  }
  EXPECT_EQ(rows, 5);

  const fs::path exported = dir / "export";
  std::tie(code, out) = run("export --checkpoint " + (dir / "ckpt/step-5").string() + " --out " + exported.string() +
                            " --dtype fp32");
  ASSERT_EQ(code, 0) << out;
  const LoadedModel model = load_hf_model(exported.string(), DType::F32, Device::cpu());
  checkpoint::StateFile state((dir / "ckpt/step-5/state.h5").string(), false);
  const ParamSpec q{"model.layers.1.self_attn.q_proj.weight", model.params.layers[1].q_proj.weight.shape()};
  Tensor master = Tensor::empty(q.shape, DType::F32);
  state.read("master", q, 0, master.numel(), master.data_as<float>());
  EXPECT_EQ(master.to_vector<float>(), model.params.layers[1].q_proj.weight.to_vector<float>());

  // The exported folder runs through the forward tool.
  const std::string ids = (dir / "ids.safetensors").string();
  save_safetensors(ids, {{"input_ids", Tensor::from_vector<int64_t>({72, 101, 108, 108, 111, 32}, {1, 6}, DType::I64)}});
  std::tie(code, out) = run("forward --model " + exported.string() + " --input-ids " + ids + " --output " +
                            (dir / "out.safetensors").string() + " --device cpu");
  EXPECT_EQ(code, 0) << out;
  EXPECT_TRUE(SafetensorsFile::open((dir / "out.safetensors").string()).contains("logits"));

  // Exporting again into the same folder overwrites nothing.
  std::tie(code, out) = run("export --checkpoint " + (dir / "ckpt/step-5").string() + " --out " + exported.string());
  EXPECT_NE(code, 0);
  EXPECT_NE(out.find("exists and is not empty"), std::string::npos) << out;
}
