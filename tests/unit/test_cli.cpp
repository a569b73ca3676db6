// The `tessera` binary end to end: exit codes and one-line errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "run_command.h"

namespace {

using tessera::testing_util::CommandResult;
using tessera::testing_util::run_tessera;

int lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

}  // namespace

TEST(Cli, VersionNamesTheBuild) {
  CommandResult r = run_tessera("version");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("tessera 0.1.0"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("MPI: Open MPI"), std::string::npos) << r.output;
}

TEST(Cli, HelpListsCommands) {
  CommandResult r = run_tessera("--help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* command : {"version", "env", "config", "selftest"})
    EXPECT_NE(r.output.find(command), std::string::npos) << command;
  EXPECT_EQ(run_tessera("config --help").exit_code, 0);
}

TEST(Cli, ErrorsAreOneLineAndNonZero) {
  for (const char* args : {"bogus", "verison", "", "version --frobnicate", "config",
                           "config /no/such.yaml", "config " TESSERA_SOURCE_DIR "/configs/tiny-cpu.yaml --set train.stpes=1"}) {
    CommandResult r = run_tessera(args);
    EXPECT_NE(r.exit_code, 0) << args;
    EXPECT_EQ(lines(r.output), 1) << args << ": " << r.output;
    EXPECT_EQ(r.output.rfind("tessera: error: ", 0), 0u) << args << ": " << r.output;
  }
  EXPECT_EQ(run_tessera("verison").output, "tessera: error: unknown command 'verison' (did you mean 'version'?) "
                                          "(see tessera --help)\n");
}

TEST(Cli, ConfigPrintsTheResolvedJob) {
  CommandResult r = run_tessera("config " TESSERA_SOURCE_DIR "/configs/tiny-cpu.yaml --set train.steps=6");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("steps: 6"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("micro_batch_size: 4"), std::string::npos) << r.output;
}

TEST(Cli, SelftestPassesOnThisMachine) {
  CommandResult r = run_tessera("selftest");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("selftest: passed"), std::string::npos) << r.output;
}

TEST(Cli, ForwardWritesLogitsLossAndGradients) {
  const std::string model = TESSERA_TEST_DATA "/hf/qwen2_bias_tied";
  const std::string out = ::testing::TempDir() + "/forward_out.safetensors";
  CommandResult r = run_tessera("forward --model " + model + " --input-ids " + model + "/inputs.safetensors --output " + out +
                         " --grads --device cpu");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto file = tessera::SafetensorsFile::open(out);
  const auto ref = tessera::SafetensorsFile::open(model + "/reference.safetensors");
  EXPECT_EQ(file.info("logits").shape, ref.info("logits").shape);
  EXPECT_NEAR(file.tensor("loss").to_vector<float>()[0], ref.tensor("loss").to_vector<float>()[0], 1e-4);
  EXPECT_TRUE(file.contains("grad.model.embed_tokens.weight"));
  EXPECT_FALSE(file.contains("grad.lm_head.weight"));  // tied: one gradient, under the embedding
  EXPECT_TRUE(file.contains("grad.model.layers.0.self_attn.q_proj.bias"));
}

TEST(Cli, ForwardErrorsNameTheFile) {
  const std::string model = TESSERA_TEST_DATA "/hf/qwen2_bias_tied";
  for (const std::string& args : std::vector<std::string>{"forward --model /no/such/model --input-ids x --output y",
                                 "forward --model " + model + " --input-ids /no/such.safetensors --output y",
                                 "forward --model " + model + " --input-ids " + model + "/config.json --output y",
                                 "forward --model " + model + " --input-ids " + model + "/model.safetensors --output y",
                                 "forward --model " + model + " --input-ids x --output y --dtype fp8"}) {
    CommandResult r = run_tessera(args);
    EXPECT_NE(r.exit_code, 0) << args;
    EXPECT_EQ(lines(r.output), 1) << args << ": " << r.output;
  }
}

TEST(Cli, TokenizePrintsIdsAsJson) {
  const std::string text = ::testing::TempDir() + "/tokenize_input.txt";
  FILE* f = std::fopen(text.c_str(), "w");
  std::fputs("Hello world", f);
  std::fclose(f);
  CommandResult r = run_tessera("tokenize --tokenizer " TESSERA_TEST_DATA "/tokenizers/llama3 --input " + text);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "[9906,1917]\n");
  r = run_tessera("tokenize --tokenizer bytes --input " + text + " --add-special-tokens");
  EXPECT_EQ(r.output, "[256,72,101,108,108,111,32,119,111,114,108,100]\n");
  r = run_tessera("tokenize --tokenizer /no/such/tokenizer.json --input " + text);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(lines(r.output), 1) << r.output;
}

// Every subcommand names a flag it does not have (before any missing required one), a missing
// value and a number that is not a plain decimal of its type, in one line.
TEST(Cli, FlagsAndNumbersAreCheckedByName) {
  struct Case {
    const char* args;
    const char* message;
  };
  for (const Case& c : std::vector<Case>{
           {"export --chekpoint a --out b", "export: unknown flag --chekpoint (did you mean --checkpoint?)"},
           {"export --bogus 1", "export: unknown flag --bogus"},
           {"quantize --model m --out o --scheme int4 --metod gptq", "quantize: unknown flag --metod (did you mean --method?)"},
           {"generate --model m --prompt a --max-new-tokens", "--max-new-tokens: 1 required INT"},
           {"generate --model m --prompt a --max-new-tokens 99999999999999999999", "--max-new-tokens: '99999999999999999999' is out of range"},
           {"generate --model m --prompt a --max-new-tokens 12abc", "--max-new-tokens: '12abc' is not a number"},
           {"generate --model m --prompt a --max-new-tokens 0x10", "--max-new-tokens: '0x10' is not a number"},
           {"generate --model m --prompt a --max-new-tokens 2.5", "--max-new-tokens: '2.5' is not a whole number"},
           {"generate --model m --prompt a --max-new-tokens 0", "--max-new-tokens: 0 is not positive"},
           {"generate --model m --prompt a --seed -1", "--seed: '-1' is not a whole number >= 0"},
           {"generate --model m --prompt a --temperature nan", "--temperature: 'nan' is not a number"},
           {"generate --model m --prompt a --temperature 1e999", "--temperature: '1e999' is out of range"},
           {"generate --model m --prompt a --top-p 0", "--top-p: 0 is not in (0, 1]"},
           {"generate --model m --prompt a --top-k -2", "--top-k: -2 is negative"},
           {"eval --model m --data d --batch-size 0", "--batch-size: 0 is not positive"},
           {"serve --port 70000", "--port: 70000 is not in [0, 65535]"},
           {"estimate-memory x.yaml --ranks -3", "--ranks: -3 is not positive"},
       }) {
    CommandResult r = run_tessera(c.args);
    EXPECT_NE(r.exit_code, 0) << c.args;
    EXPECT_EQ(lines(r.output), 1) << c.args << ": " << r.output;
    EXPECT_NE(r.output.find(c.message), std::string::npos) << c.args << ": " << r.output;
  }
  // A leading zero is a decimal zero, not octal: 010 new tokens are ten.
  CommandResult r = run_tessera("generate --model /no/such/model --prompt a --max-new-tokens 010");
  EXPECT_NE(r.output.find("/no/such/model: no such file or folder"), std::string::npos) << r.output;
}
