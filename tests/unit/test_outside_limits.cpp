// Sizes and keys read from outside (config.json, model.init, job YAML): sane bounds checked
// before anything is allocated, silently accepted input refused by name, and errors that name
// the user's key instead of leaking a library's internals (issue 13, items 13-15).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "comm/world.h"
#include "engine/config/job_config.h"
#include "engine/job_limits.h"
#include "io/data/jsonl.h"
#include "job_config_error.h"
#include "model/model_config.h"
#include "run_command.h"
#include "test_dir.h"

using namespace tessera;
using nlohmann::json;
using tessera::testing_util::error_of;
using tessera::testing_util::job_config_error;
using tessera::testing_util::kNoError;
using tessera::testing_util::run_tessera;

namespace {

json tiny_config() {
  return {{"model_type", "llama"},      {"vocab_size", 259},       {"hidden_size", 64},
          {"intermediate_size", 176},   {"num_hidden_layers", 2},  {"num_attention_heads", 4},
          {"num_key_value_heads", 2},   {"max_position_embeddings", 256}};
}

const std::string kTinyInit =
    "model:\n  init:\n    model_type: llama\n    vocab_size: 259\n    hidden_size: 64\n    intermediate_size: 176\n"
    "    num_hidden_layers: 2\n    num_attention_heads: 4\n";

const std::string kTinyJob = std::string(TESSERA_SOURCE_DIR) + "/configs/tiny-cpu.yaml";

}  // namespace

// Item 13: 9223372036854775807 layers ran into std::bad_alloc, 1000000000000 was OOM-killed.
TEST(OutsideLimits, ConfigSizesAboveTheLimitsNameTheKey) {
  for (const auto& [key, value] : std::vector<std::pair<std::string, int64_t>>{
           {"num_hidden_layers", 1000000000000}, {"num_hidden_layers", INT64_MAX}, {"hidden_size", 1 << 20},
           {"intermediate_size", int64_t{1} << 40}, {"vocab_size", int64_t{1} << 31},
           {"num_attention_heads", 4096}, {"max_position_embeddings", int64_t{1} << 40}}) {
    json j = tiny_config();
    j[key] = value;
    EXPECT_EQ(error_of([&] { ModelConfig::from_json(j, "config.json"); }).rfind("config.json: '" + key + "' is " +
                                                                                  std::to_string(value) + ", above",
                                                                              0),
              0u)
        << key << ": " << error_of([&] { ModelConfig::from_json(j, "config.json"); });
  }
  json j = tiny_config();
  j["num_hidden_layers"] = 1024;
  EXPECT_EQ(ModelConfig::from_json(j).num_hidden_layers, 1024);  // the limit itself is fine
  j["num_hidden_layers"] = 1025;
  EXPECT_EQ(error_of([&] { ModelConfig::from_json(j, "c"); }),
            "c: 'num_hidden_layers' is 1025, above the largest Tessera accepts (1024)");
  j = tiny_config();
  j["num_hidden_layers"] = 1e12;  // a float: not a count of layers at all
  EXPECT_EQ(error_of([&] { ModelConfig::from_json(j, "c"); }),
            "c: 'num_hidden_layers' must be an integer, got 1000000000000.0");
}

// model.init.num_hidden_layers=100000000 ended in "internal error: std::bad_alloc"; now the
// config check names the --set, before a job starts.
TEST(OutsideLimits, ModelInitSizesAreCheckedWhenTheConfigLoads) {
  const auto r = run_tessera("config " + kTinyJob + " --set model.init.num_hidden_layers=100000000");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.output, "tessera: error: --set model.init.num_hidden_layers=100000000: model.init: 'num_hidden_layers' is "
                      "100000000, above the largest Tessera accepts (1024)\n");
  EXPECT_EQ(job_config_error(kTinyInit + "    max_position_embeddings: 9223372036854775807\n"),
            "job.yaml:3: model.init: 'max_position_embeddings' is 9223372036854775807, above the largest Tessera "
            "accepts (16777216)");
}

// Item 13, memory: a model within the bounds but far beyond the host is refused before training
// allocates, naming its sizes.
TEST(OutsideLimits, AModelBeyondTheHostsMemoryIsRefusedFirst) {
  JobConfig job = load_job_config(kTinyJob);
  json j = tiny_config();
  World world;
  EXPECT_NO_THROW(check_job_fits(job, ModelConfig::from_json(j), world, Device::cpu(), 24.0 * (1 << 30)));
  j["num_hidden_layers"] = 1024;
  j["hidden_size"] = 65536;
  j["num_attention_heads"] = 64;
  j["num_key_value_heads"] = 64;
  j["intermediate_size"] = 1 << 20;
  const std::string e =
      error_of([&] { check_job_fits(job, ModelConfig::from_json(j), world, Device::cpu(), 24.0 * (1 << 30)); });
  EXPECT_EQ(e.rfind("the model (num_hidden_layers 1024, hidden_size 65536, intermediate_size 1048576, vocab_size 259: "
                    "2.29e+14 parameters) needs about ",
                    0),
            0u)
      << e;
  EXPECT_NE(e.find("which has 24.0 GiB (see tessera estimate-memory)"), std::string::npos) << e;
  // End to end: refused in well under a second instead of swapping the machine to death.
  const auto r = run_tessera("train " + kTinyJob +
                             " --set model.init.num_hidden_layers=1024 --set model.init.hidden_size=65536"
                             " --set model.init.intermediate_size=1048576 --set model.init.num_attention_heads=64"
                             " --set model.init.num_key_value_heads=64 --set checkpoint.dir= "
                             "--set checkpoint.every_steps=0 --set log.metrics_file=");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("needs about"), std::string::npos) << r.output;
}

// Item 14: each was silently accepted.
TEST(OutsideLimits, SeqLenAboveTheModelsPositionsIsAnError) {
  JobConfig job = load_job_config(kTinyJob);
  job.data.seq_len = 512;
  EXPECT_EQ(error_of([&] { check_job_fits(job, ModelConfig::from_json(tiny_config()), World{}, Device::cpu()); }),
            "data.seq_len (512) is above the model's max_position_embeddings (256): positions past it were never "
            "trained; lower data.seq_len");
  job.data.seq_len = 256;
  EXPECT_NO_THROW(check_job_fits(job, ModelConfig::from_json(tiny_config()), World{}, Device::cpu()));
}

TEST(OutsideLimits, DuplicateYamlKeysAreErrors) {
  EXPECT_EQ(job_config_error("train:\n  steps: 5\n  lr: 1e-3\n  steps: 6\n"),
            "job.yaml:4: duplicate key 'steps' (first given on line 2)");
  EXPECT_EQ(job_config_error("train:\n  steps: 5\ntrain:\n  lr: 1e-3\n"),
            "job.yaml:3: duplicate key 'train' (first given on line 1)");
  EXPECT_EQ(job_config_error(kTinyInit + "    hidden_size: 128\n"), "job.yaml:9: duplicate key 'hidden_size' (first given on line 5)");
}

TEST(OutsideLimits, UnknownKeysInModelInitAreErrors) {
  EXPECT_EQ(job_config_error(kTinyInit + "    num_key_value_head: 2\n"),
            "job.yaml:9: model.init.num_key_value_head: unknown key (did you mean "
            "'model.init.num_key_value_heads'?): model.init takes config.json keys");
  EXPECT_EQ(job_config_error(kTinyInit + "    initializer_range: 0.01\n"),
            "job.yaml:9: model.init.initializer_range: unknown key: model.init takes config.json keys");
  EXPECT_EQ(job_config_error(kTinyInit), kNoError);
}

// A warning (`--set checkpoint.dir=` is how a job runs without checkpoints), before training.
TEST(OutsideLimits, CheckpointEveryStepsWithoutADirWarns) {
  const std::string job = "train " + kTinyJob + " --set data.train=" TESSERA_SOURCE_DIR
                          "/README.md --set train.steps=1 --set log.metrics_file= --set checkpoint.dir=";
  auto r = run_tessera(job);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  const size_t warning =
      r.output.find("checkpoint.every_steps is 30 but checkpoint.dir is empty: no checkpoint will be written");
  EXPECT_NE(warning, std::string::npos) << r.output;
  EXPECT_LT(warning, r.output.find("training ")) << "warned before training: " << r.output;
  r = run_tessera(job + " --set checkpoint.every_steps=0");
  EXPECT_EQ(r.output.find("checkpoint.every_steps is"), std::string::npos) << r.output;
}

// Item 15: errors that leaked internals.
TEST(OutsideLimits, ConfigOfAFolderSaysSo) {
  const auto dir = testing_util::fresh_test_dir("tessera-limits");
  const auto r = run_tessera("config " + dir.string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.output, "tessera: error: " + dir.string() + ": is a folder, expected a YAML config file\n");
}

TEST(OutsideLimits, InvalidUtf8InModelInitNamesTheKey) {
  EXPECT_EQ(job_config_error(kTinyInit + "    torch_dtype: bf\xff" "16\n"),
            "job.yaml:9: model.init.torch_dtype: not valid UTF-8 (byte 2 of \"bf\xEF\xBF\xBD" "16\")");
  EXPECT_EQ(job_config_error("model:\n  init:\n    model_type: llama\n    num_hidden_layers: \"\xc3\"\n"),
            "job.yaml:4: model.init.num_hidden_layers: not valid UTF-8 (byte 0 of \"\xEF\xBF\xBD\")");
}

TEST(OutsideLimits, OverridesThatCreateKeysAreBlamedForThem) {
  EXPECT_EQ(job_config_error("train:\n  steps: 5\n", {"a.b.c.d=1"}), "--set a.b.c.d=1: unknown key 'a'");
  EXPECT_EQ(job_config_error("train:\n  steps: 5\n", {"train.zzzzzz.y=1"}),
            "--set train.zzzzzz.y=1: unknown key 'train.zzzzzz'");
  EXPECT_EQ(job_config_error("train:\n  steps: 5\n", {"train.steps=0"}), "--set train.steps=0: train.steps: must be at least 1, got 0");
}

// A JSONL line without its closing quote echoed the whole (52 MB) line into the error.
TEST(OutsideLimits, ABrokenJsonlLineIsQuotedShort) {
  const std::string line = "{\"text\": \"" + std::string(1 << 20, 'a');
  const std::string e = error_of([&] { data::parse_jsonl_line(line, data::Format::text, "big.jsonl:7"); });
  EXPECT_EQ(e, "big.jsonl:7: invalid JSON: column 1048587: syntax error while parsing value - invalid string: missing "
               "closing quote, near '..." + std::string(40, 'a') + "'");
}
