// The writers of outputs a user relies on, killed (SIGKILL, TESSERA_FAULT_INJECT=kill:<file>) or
// failing (ENOSPC, TESSERA_FAULT_INJECT=<file>) part-way: `tessera export` in every format,
// `tessera quantize` and a training job's checkpoint leave nothing that looks complete under the
// name asked for, never overwrite an existing output, and the next run succeeds.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "engine/sha256sums.h"
#include "io/atomic_file.h"
#include "io/staged_folder.h"
#include "run_command.h"

using namespace tessera;
namespace fs = std::filesystem;

namespace {

fs::path suite_dir() {
  static const fs::path dir = fs::temp_directory_path() / ("tessera_output_writers_" + std::to_string(::getpid()));
  return dir;
}

fs::path test_dir() {
  const fs::path dir = suite_dir() / ::testing::UnitTest::GetInstance()->current_test_info()->name();
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// `tessera args` with TESSERA_FAULT_INJECT=fault ("" for none).
testing_util::CommandResult run_with(const std::string& fault, const std::string& args) {
  return testing_util::run_command((fault.empty() ? "" : "TESSERA_FAULT_INJECT=" + fault + " ") +
                                   TESSERA_BIN_DIR "/tessera " + args);
}

bool killed(const testing_util::CommandResult& r) { return r.exit_code == -1 || r.exit_code == 128 + SIGKILL; }

int lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

const std::string kTrain = "train " TESSERA_SOURCE_DIR "/configs/tiny-cpu.yaml --set data.train=" TESSERA_SOURCE_DIR
                           "/README.md --set log.metrics_file= --set train.steps=2 --set checkpoint.every_steps=2";

// A tiny full checkpoint, a LoRA checkpoint over its export, made once for the suite.
class OutputWriters : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    fs::remove_all(suite_dir());
    fs::create_directories(suite_dir());
    auto r = run_with("", kTrain + " --set checkpoint.dir=" + (suite_dir() / "full").string());
    ASSERT_EQ(r.exit_code, 0) << r.output;
    r = run_with("", "export --checkpoint " + checkpoint() + " --out " + base() + " --dtype fp32");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    r = run_with("", kTrain + " --set model.init= --set model.path=" + base() + " --set model.tokenizer=bytes" +
                         " --set lora.r=2 --set checkpoint.dir=" + (suite_dir() / "lora").string());
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() { fs::remove_all(suite_dir()); }

  static std::string checkpoint() { return (suite_dir() / "full/step-2").string(); }
  static std::string lora_checkpoint() { return (suite_dir() / "lora/step-2").string(); }
  static std::string base() { return (suite_dir() / "base").string(); }
};

// Killed while writing `file`, the folder export `args --out DIR` leaves no DIR (only a hidden
// staging folder); failing there (ENOSPC) it says so in one line and leaves nothing; the next run
// writes DIR whole, with a SHA256SUMS that verifies.
void expect_folder_export_is_atomic(const std::string& args, const std::vector<std::string>& files) {
  const fs::path dir = test_dir(), out = dir / "out";
  for (const std::string& file : files) {
    SCOPED_TRACE(file);
    auto r = run_with("kill:" + file, args + " --out " + out.string());
    EXPECT_TRUE(killed(r)) << r.exit_code << ": " << r.output;
    EXPECT_FALSE(fs::exists(out));
    for (const std::string& name : names_in(dir)) EXPECT_EQ(name.rfind(".out.partial-", 0), 0u) << name;

    r = run_with(file, args + " --out " + out.string());
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_EQ(lines(r.output.substr(r.output.find("tessera: error:"))), 1) << r.output;
    EXPECT_NE(r.output.find(file), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("injected by TESSERA_FAULT_INJECT"), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(out));
  }
  auto r = run_with("", args + " --out " + out.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(names_in(dir), std::vector<std::string>{"out"});  // the killed runs' staging folders are gone
  EXPECT_GE(verify_sha256sums(out.string()), 2);
  for (const std::string& file : files)
    if (file != kSha256SumsFile) EXPECT_TRUE(fs::exists(out / file)) << file;

  // An existing output is never replaced: not by a second export, not over a file.
  const std::vector<std::string> before = names_in(out);
  r = run_with("", args + " --out " + out.string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("exists and is not empty (nothing was overwritten)"), std::string::npos) << r.output;
  EXPECT_EQ(names_in(out), before);
  EXPECT_GE(verify_sha256sums(out.string()), 2);
  std::ofstream(dir / "file") << "mine";
  r = run_with("", args + " --out " + (dir / "file").string());
  EXPECT_NE(r.output.find("exists and is not a folder"), std::string::npos) << r.output;
  std::ifstream in(dir / "file");
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "mine");
}

}  // namespace

TEST_F(OutputWriters, SafetensorsExport) {
  expect_folder_export_is_atomic("export --checkpoint " + checkpoint(), {"model.safetensors", "config.json", kSha256SumsFile});
}

TEST_F(OutputWriters, MergedLoraExport) {
  expect_folder_export_is_atomic("export --checkpoint " + lora_checkpoint(), {"model.safetensors"});
}

TEST_F(OutputWriters, PeftExport) {
  expect_folder_export_is_atomic("export --format peft --checkpoint " + lora_checkpoint(),
                                 {"adapter_model.safetensors", "adapter_config.json", kSha256SumsFile});
}

TEST_F(OutputWriters, QuantizedExportAndQuantize) {
  expect_folder_export_is_atomic("export --format quantized --scheme int8 --checkpoint " + checkpoint(),
                                 {"model.safetensors", "config.json", kSha256SumsFile});
  expect_folder_export_is_atomic("quantize --scheme int4 --modules q_proj --model " + base(), {"model.safetensors", kSha256SumsFile});
}

// A GGUF file is written as FILE.tmp and renamed: killed or failing, no FILE; an existing FILE is
// never replaced.
TEST_F(OutputWriters, GgufExport) {
  const fs::path dir = test_dir(), out = dir / "model.gguf";
  const std::string args = "export --format gguf --quant q8_0 --checkpoint " + checkpoint() + " --out " + out.string();
  auto r = run_with("kill:model.gguf", args);
  EXPECT_TRUE(killed(r)) << r.exit_code << ": " << r.output;
  EXPECT_EQ(names_in(dir), std::vector<std::string>{"model.gguf.tmp"});
  r = run_with("model.gguf", args);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("model.gguf.tmp: write failed"), std::string::npos) << r.output;
  EXPECT_EQ(names_in(dir), std::vector<std::string>{});
  r = run_with("", args);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(out));
  const auto size = fs::file_size(out);
  r = run_with("", args);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("exists (nothing was overwritten)"), std::string::npos) << r.output;
  EXPECT_EQ(fs::file_size(out), size);
}

// A job killed while saving a checkpoint leaves no step-<N> folder; resumed, it starts afresh and
// saves a complete one.
TEST_F(OutputWriters, CheckpointKilledMidSave) {
  const fs::path dir = test_dir();
  const std::string job = kTrain + " --set checkpoint.dir=" + (dir / "ckpt").string();
  for (const char* file : {"state.h5", "COMPLETE"}) {
    SCOPED_TRACE(file);
    auto r = run_with(std::string("kill:") + file, job);
    EXPECT_TRUE(killed(r)) << r.exit_code << ": " << r.output;
    EXPECT_FALSE(fs::exists(dir / "ckpt/step-2"));
    for (const std::string& name : names_in(dir / "ckpt")) EXPECT_EQ(name[0], '.') << name;
  }
  auto r = run_with("", job);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir / "ckpt/step-2/COMPLETE"));
  r = run_with("", "export --checkpoint " + (dir / "ckpt/step-2").string() + " --out " + (dir / "out").string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST(StagedFolder, AppearsWholeOrNotAtAll) {
  const fs::path dir = fs::temp_directory_path() / ("tessera_staged_folder_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const fs::path out = dir / "out";
  {
    StagedFolder staged(out.string());
    EXPECT_EQ(fs::path(staged.path()).parent_path(), dir);
    EXPECT_EQ(fs::path(staged.path()).filename().string(), ".out.partial-" + std::to_string(::getpid()));
    write_file_atomically(staged.path() + "/a", "1");
    EXPECT_FALSE(fs::exists(out));
  }  // not committed: removed
  EXPECT_EQ(names_in(dir), std::vector<std::string>{});

  // A dead process's staging folder is removed; a live one's (ours) is left alone.
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);
  fs::create_directories(dir / (".out.partial-" + std::to_string(child)));
  fs::create_directories(dir / ".out.partial-1");  // init: alive
  fs::create_directories(out);  // an empty folder is replaced
  StagedFolder staged(out.string());
  EXPECT_FALSE(fs::exists(dir / (".out.partial-" + std::to_string(child))));
  EXPECT_TRUE(fs::exists(dir / ".out.partial-1"));
  write_file_atomically(staged.path() + "/a", "1");
  staged.commit();
  EXPECT_TRUE(fs::exists(out / "a"));
  EXPECT_FALSE(fs::exists(staged.path()));
  try {
    StagedFolder again(out.string() + "/");
    ADD_FAILURE() << "a non-empty folder was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--out " + out.string() + ": exists and is not empty"), std::string::npos)
        << e.what();
  }
  fs::remove_all(dir);
}

TEST(AtomicFile, AFailedWriteLeavesNoFile) {
  const fs::path dir = fs::temp_directory_path() / ("tessera_atomic_file_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  ::setenv("TESSERA_FAULT_INJECT", "x.bin", 1);
  try {
    write_file_atomically((dir / "x.bin").string(), "hello");
    ADD_FAILURE() << "the injected write error did not fire";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("x.bin.tmp: write failed: No space left on device (injected"), std::string::npos)
        << e.what();
  }
  ::unsetenv("TESSERA_FAULT_INJECT");
  EXPECT_EQ(names_in(dir), std::vector<std::string>{});
  fs::remove_all(dir);
}
