// Job configs: defaults, overrides, and the one-line errors for bad input.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "engine/config/job_config.h"
#include "engine/config/offload_options.h"
#include "engine/schedule.h"
#include "job_config_error.h"
#include "test_dir.h"

using namespace tessera;
using tessera::testing_util::job_config_error;
using tessera::testing_util::write_temp_file;

TEST(Config, DefaultsAndValues) {
  JobConfig c = load_job_config(write_temp_file("ok.yaml", "train:\n  steps: 7\n  lr: 1e-4\n  betas: [0.8, 0.9]\n"
                                                           "zero: {stage: 2, offload_optimizer: {device: cpu}}\n"));
  EXPECT_EQ(c.train.steps, 7);
  EXPECT_DOUBLE_EQ(c.train.lr, 1e-4);
  EXPECT_EQ(c.train.betas, (std::vector<double>{0.8, 0.9}));
  EXPECT_EQ(c.zero.stage, 2);
  EXPECT_EQ(c.zero.offload_optimizer.device, "cpu");
  EXPECT_EQ(c.train.micro_batch_size, 1);  // default
  EXPECT_EQ(c.data.format, "auto");
}

TEST(Config, UnknownKeyNamesFileLineAndClosestKey) {
  EXPECT_EQ(job_config_error("train:\n  stpes: 6\n"), "job.yaml:2: unknown key 'train.stpes' (did you mean 'train.steps'?)");
  EXPECT_EQ(job_config_error("trian:\n  steps: 6\n"), "job.yaml:1: unknown key 'trian' (did you mean 'train'?)");
  EXPECT_EQ(job_config_error("train:\n  zzzzzzzz: 1\n"), "job.yaml:2: unknown key 'train.zzzzzzzz'");
}

TEST(Config, WrongTypesNameThePath) {
  EXPECT_EQ(job_config_error("train:\n  steps: many\n"), "job.yaml:2: train.steps: expected an integer, got \"many\"");
  EXPECT_EQ(job_config_error("train:\n  lr: fast\n"), "job.yaml:2: train.lr: expected a number, got \"fast\"");
  EXPECT_EQ(job_config_error("train:\n  steps: [1, 2]\n"), "job.yaml:2: train.steps: expected an integer, got a list");
  EXPECT_EQ(job_config_error("train:\n  steps: \"6\"\n"), "job.yaml:2: train.steps: expected an integer, got \"6\"");
  EXPECT_EQ(job_config_error("train: 5\n"), "job.yaml:1: train: expected a mapping of keys, got \"5\"");
  EXPECT_EQ(job_config_error("train:\n  activation_checkpointing: maybe\n"),
            "job.yaml:2: train.activation_checkpointing: expected true or false, got \"maybe\"");
  EXPECT_EQ(job_config_error("train:\n  betas: [0.9, x]\n"), "job.yaml:2: train.betas[1]: expected a number, got \"x\"");
  EXPECT_EQ(job_config_error("- 1\n- 2\n"), "job.yaml:1: the top level must be a mapping of sections");
}

TEST(Config, ChoicesAndRanges) {
  EXPECT_EQ(job_config_error("train:\n  device: tpu\n"), "job.yaml:2: train.device: expected one of auto, cpu, cuda, got \"tpu\"");
  EXPECT_EQ(job_config_error("train:\n  steps: 0\n"), "job.yaml:2: train.steps: must be at least 1, got 0");
  EXPECT_EQ(job_config_error("zero:\n  stage: 4\n"), "job.yaml:2: zero.stage: must be 0, 1, 2 or 3, got 4");
  EXPECT_EQ(job_config_error("zero:\n  offload_optimizer: {device: nvme}\n"),
            "job.yaml: zero.offload_optimizer.path: is required when zero.offload_optimizer.device is nvme");
  EXPECT_EQ(job_config_error("train:\n  betas: [0.9]\n"), "job.yaml:2: train.betas: must be two numbers in [0, 1), e.g. [0.9, 0.95]");
  EXPECT_EQ(job_config_error("train:\n  stop_after: -1\n"), "job.yaml:2: train.stop_after: must be >= 0 (0: off), got -1");
  EXPECT_EQ(job_config_error("train:\n  recompute_norms_swiglu_layers: 4\n"),
            "job.yaml:2: train.recompute_norms_swiglu_layers: counts the layers train.recompute_norms_swiglu recomputes: "
            "set that to true too");
  EXPECT_EQ(job_config_error("train:\n  recompute_norms_swiglu: true\n  recompute_norms_swiglu_layers: -1\n"),
            "job.yaml:3: train.recompute_norms_swiglu_layers: must be >= 0 (0: every layer), got -1");
}

// A decaying schedule whose only step is at lr 0 trains nothing: an error; warmup or a floor fixes it.
TEST(Config, OneStepScheduleKeepsANonZeroLr) {
  for (const char* type : {"cosine", "linear"})
    EXPECT_EQ(job_config_error(std::string("train:\n  steps: 1\n  schedule: {type: ") + type + "}\n"),
              std::string("job.yaml:3: train.schedule: a ") + type +
                  " schedule over 1 step with no warmup decays to min_lr 0 at that step, so nothing would be "
                  "trained: use type constant, warmup_steps, min_lr > 0 or more steps");
  for (const char* ok : {"train.schedule.type=constant", "train.schedule.warmup_steps=1", "train.schedule.min_lr=1e-5"}) {
    const JobConfig c = load_job_config("", {"train.steps=1", ok});
    EXPECT_GT(learning_rate(c.train, 1), 0) << ok;
  }
}

TEST(Config, NvmeOffloadKeys) {
  JobConfig c = load_job_config("", {"zero.offload_params.device=nvme", "zero.offload_params.path=/nvme/swap",
                                     "zero.offload_params.io_block_kb=256", "zero.offload_params.units_in_flight=3"});
  EXPECT_EQ(c.zero.offload_params.io_block_kb, 256);
  EXPECT_EQ(c.zero.offload_params.units_in_flight, 3);
  EXPECT_EQ(c.zero.offload_params.pinned_buffer_mb, 256);
  EXPECT_EQ(c.zero.offload_params.io_queue_depth, 8);
  offload::NvmeOptions o = nvme_options(c.zero.offload_params);
  EXPECT_EQ(o.path, "/nvme/swap");
  EXPECT_EQ(o.block_bytes, 256 * 1024);
  EXPECT_EQ(o.queue_depth, 8);
  EXPECT_EQ(job_config_error("zero:\n  offload_params: {device: nvme, path: /x, io_block_kb: 6}\n"),
            "job.yaml:2: zero.offload_params.io_block_kb: must be a multiple of 4 from 4 to 1048576 (1 GiB), got 6");
  EXPECT_EQ(job_config_error("zero:\n  offload_optimizer:\n    pinned_buffer_mb: 0\n"),
            "job.yaml:3: zero.offload_optimizer.pinned_buffer_mb: must be at least 1, got 0");
  EXPECT_EQ(job_config_error("", {"zero.offload_optimizer.io_queue_depth=0"}),
            "--set zero.offload_optimizer.io_queue_depth=0: zero.offload_optimizer.io_queue_depth: must be 1 to 4096, "
            "got 0");
  EXPECT_EQ(job_config_error("", {"zero.offload_params.units_in_flight=0"}),
            "--set zero.offload_params.units_in_flight=0: zero.offload_params.units_in_flight: must be at least 1, got 0");
}

TEST(Config, BrokenYamlNamesTheLine) {
  EXPECT_EQ(job_config_error("train:\n  steps: 6\n  lr: [1, 2\n"),
            "job.yaml:4: invalid YAML: end of sequence flow not found");
  EXPECT_EQ(load_job_config("").train.steps, 100);  // no file: all defaults
  EXPECT_THROW(load_job_config("/no/such/file.yaml"), Error);
}

TEST(Config, OverridesFromTheCommandLine) {
  const std::string path = write_temp_file("ov.yaml", "train:\n  steps: 100\n");
  JobConfig c = load_job_config(path, {"train.steps=6", "train.schedule.type=linear", "train.betas=[0.5, 0.6]",
                                       "zero.offload_params.device=cpu"});
  EXPECT_EQ(c.train.steps, 6);
  EXPECT_EQ(c.train.schedule.type, "linear");
  EXPECT_EQ(c.train.betas, (std::vector<double>{0.5, 0.6}));
  EXPECT_EQ(c.zero.offload_params.device, "cpu");
  EXPECT_EQ(load_job_config(path, {"checkpoint.dir=runs/x", "checkpoint.dir="}).checkpoint.dir, "");  // unset
  EXPECT_EQ(job_config_error("train:\n  steps: 3\n", {"train.stpes=6"}),
            "--set train.stpes=6: unknown key 'train.stpes' (did you mean 'train.steps'?)");
  EXPECT_EQ(job_config_error("", {"train.steps=many"}), "--set train.steps=many: train.steps: expected an integer, got \"many\"");
  EXPECT_EQ(job_config_error("", {"train.steps"}), "--set train.steps: expected key.path=value");
  EXPECT_EQ(job_config_error("", {"train.steps=2", "train.steps.x=1"}),
            "--set train.steps.x=1: 'steps' is a value, not a section");
}

TEST(Config, WritesBackWhatItReads) {
  JobConfig c = load_job_config("", {"train.lr=0.00025", "data.seq_len=64", "model.init={model_type: llama, "
                                     "vocab_size: 259, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, "
                                     "num_attention_heads: 2}"});
  const std::string yaml = to_yaml(c);
  const std::string path = write_temp_file("round.yaml", yaml);
  JobConfig again = load_job_config(path);
  EXPECT_EQ(to_yaml(again), yaml);
  EXPECT_DOUBLE_EQ(again.train.lr, 0.00025);
  EXPECT_EQ(again.model.init["hidden_size"].as<int>(), 32);
}

TEST(Config, ExampleConfigsAreValid) {
  int seen = 0;
  for (const auto& entry : std::filesystem::directory_iterator(TESSERA_SOURCE_DIR "/configs")) {
    if (entry.path().extension() != ".yaml") continue;
    if (entry.path().filename().string().starts_with("serve-")) continue;  // serve configs: tests/server
    SCOPED_TRACE(entry.path().string());
    EXPECT_NO_THROW(load_job_config(entry.path().string()));
    ++seen;
  }
  EXPECT_GE(seen, 1);
}
