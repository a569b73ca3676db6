// tessera train with checkpoints that cannot be written, through the binary: a checkpoint.dir
// that is a file, read-only or full is refused before step 1; a disk that fills during a save
// stops the job with the file and the cause and keeps the last good checkpoint; starting from
// step 0 over checkpoints needs checkpoint.overwrite; a metrics file that cannot be written is
// loud. The tmpfs cases need root and mount(8) and skip without them.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "engine/checkpoint/manifest.h"
#include "run_command.h"

using namespace tessera;
namespace fs = std::filesystem;

namespace {

constexpr auto run = testing_util::tessera_cli;  // {exit code, output}

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("checkpoint_cli_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string job(const fs::path& ckpt, const std::string& more) {
  return "train " TESSERA_SOURCE_DIR "/configs/tiny-cpu.yaml --set data.train=" TESSERA_SOURCE_DIR
         "/README.md --set log.metrics_file= --set log.every_steps=1 --set checkpoint.dir=" +
         ckpt.string() + " " + more;
}

// A tmpfs mounted at `at` while in scope; mounted() false where this machine does not allow it.
class Tmpfs {
 public:
  Tmpfs(const fs::path& at, const std::string& options) : at_(at) {
    fs::create_directories(at);
    mounted_ = testing_util::run_command("mount -t tmpfs -o " + options + " tmpfs " + at.string()).exit_code == 0;
  }
  ~Tmpfs() {
    if (mounted_) testing_util::run_command("umount " + at_.string());
  }
  bool mounted() const { return mounted_; }

 private:
  fs::path at_;
  bool mounted_ = false;
};

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST(CheckpointCli, ADirThatIsAFileIsRefusedBeforeStep1) {
  const fs::path file = fresh_dir("file") / "ckpt";
  std::ofstream(file) << "a file";
  auto [code, out] = run(job(file, "--set train.steps=2"));
  EXPECT_NE(code, 0);
  EXPECT_TRUE(contains(out, "checkpoint.dir: " + file.string() + " is not a folder")) << out;
  EXPECT_FALSE(contains(out, "step 1/2")) << out;
}

TEST(CheckpointCli, ADiskThatRefusesWritesIsFoundBeforeStep1) {
  const fs::path dir = fresh_dir("probe");
  const auto [code, out] = testing_util::run_command("TESSERA_FAULT_INJECT=.write-probe " TESSERA_BIN_DIR "/tessera " +
                                                     job(dir / "ckpt", "--set train.steps=2"));
  EXPECT_NE(code, 0);
  EXPECT_TRUE(contains(out, "checkpoint.dir: cannot write there: " + (dir / "ckpt/.write-probe").string() +
                                ": cannot write: No space left on device"))
      << out;
  EXPECT_FALSE(contains(out, "step 1/2")) << out;
}

TEST(CheckpointCli, AFullOrReadOnlyTmpfsIsFoundBeforeStep1) {
  const fs::path dir = fresh_dir("small");
  {
    Tmpfs small(dir / "small", "size=256k");
    if (!small.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here";
    auto [code, out] = run(job(dir / "small", "--set train.steps=2"));
    EXPECT_NE(code, 0);
    EXPECT_TRUE(contains(out, "MiB free, a checkpoint of this job needs about")) << out;
    EXPECT_FALSE(contains(out, "step 1/2")) << out;
  }
  Tmpfs read_only(dir / "ro", "ro,size=4m");
  ASSERT_TRUE(read_only.mounted());
  auto [code, out] = run(job(dir / "ro", "--set train.steps=2"));
  EXPECT_NE(code, 0);
  EXPECT_TRUE(contains(out, "checkpoint.dir: cannot write there: ")) << out;
  EXPECT_TRUE(contains(out, "Read-only file system")) << out;
  EXPECT_FALSE(contains(out, "step 1/2")) << out;
}

// The case: a 2 MB tmpfs (room for one checkpoint of this model, not two), every_steps 3,
// keep_last 1, steps 10. Today's main logged "checkpoint saved" each time and exited 0 with only
// an empty COMPLETE and a sparse state.h5 left.
TEST(CheckpointCli, ADiskThatFillsDuringASaveStopsTheJobAndKeepsTheLastCheckpoint) {
  const fs::path dir = fresh_dir("full");
  Tmpfs disk(dir / "ckpt", "size=2m");
  if (!disk.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here";
  auto [code, out] =
      run(job(dir / "ckpt", "--set train.steps=10 --set checkpoint.every_steps=3 --set checkpoint.keep_last=1"));
  EXPECT_NE(code, 0) << out;
  EXPECT_TRUE(contains(out, "checkpoint saved: " + (dir / "ckpt/step-3").string())) << out;
  EXPECT_TRUE(contains(out, "checkpoint of step 6 not saved: " + (dir / "ckpt/.step-6.tmp/").string())) << out;
  EXPECT_TRUE(contains(out, "cannot write")) << out;
  EXPECT_FALSE(contains(out, "checkpoint saved: " + (dir / "ckpt/step-6").string())) << out;
  EXPECT_EQ(checkpoint::verify_manifest((dir / "ckpt/step-3").string()), "");
  EXPECT_FALSE(fs::exists(dir / "ckpt/step-6"));
  EXPECT_FALSE(fs::exists(dir / "ckpt/.step-6.tmp"));
  EXPECT_FALSE(contains(out, "step 7/10")) << out;
}

TEST(CheckpointCli, StartingFromStepZeroOverCheckpointsNeedsOverwrite) {
  const fs::path dir = fresh_dir("overwrite");
  const fs::path ckpt = dir / "ckpt";
  auto [code, out] = run(job(ckpt, "--set train.steps=2"));
  ASSERT_EQ(code, 0) << out;
  std::tie(code, out) = run(job(ckpt, "--set train.steps=3 --set checkpoint.resume=never"));
  EXPECT_NE(code, 0);
  EXPECT_TRUE(contains(out, "checkpoint.dir: " + ckpt.string() + " already holds checkpoints (step-2)")) << out;
  EXPECT_TRUE(contains(out, "checkpoint.overwrite: true")) << out;
  EXPECT_FALSE(contains(out, "step 1/3")) << out;
  // Told to: the old checkpoints go, and keep_last then keeps this run's newest (not step-2's run).
  std::tie(code, out) = run(job(ckpt, "--set train.steps=3 --set checkpoint.resume=never --set checkpoint.overwrite=true "
                                      "--set checkpoint.every_steps=1 --set checkpoint.keep_last=1"));
  ASSERT_EQ(code, 0) << out;
  EXPECT_TRUE(contains(out, "checkpoint.overwrite: deleting " + (ckpt / "step-2").string())) << out;
  EXPECT_EQ(checkpoint::verify_manifest((ckpt / "step-3").string()), "");
  EXPECT_FALSE(fs::exists(ckpt / "step-1"));
  EXPECT_FALSE(fs::exists(ckpt / "step-2"));
  // Damaged, resume auto would start from 0: refused as well, naming the damage.
  fs::remove(ckpt / "step-3/COMPLETE");
  std::tie(code, out) = run(job(ckpt, "--set train.steps=3"));
  EXPECT_NE(code, 0);
  EXPECT_TRUE(contains(out, "step-3 (no COMPLETE marker (the save did not finish))")) << out;
}

TEST(CheckpointCli, AStrayStepNameIsIgnoredWithAWarning) {
  const fs::path dir = fresh_dir("stray");
  fs::create_directories(dir / "ckpt/step-99999999999999999999");
  auto [code, out] = run(job(dir / "ckpt", "--set train.steps=1"));
  EXPECT_EQ(code, 0) << out;
  EXPECT_TRUE(contains(out, "ignoring " + (dir / "ckpt/step-99999999999999999999").string())) << out;
  EXPECT_EQ(checkpoint::verify_manifest((dir / "ckpt/step-1").string()), "");
}

// /dev/full takes the open and fails every write with ENOSPC: today's main wrote nothing, silently.
TEST(CheckpointCli, AMetricsFileThatCannotBeWrittenIsLoud) {
  auto [code, out] = run(job("", "--set train.steps=2 --set log.metrics_file=/dev/full"));
  EXPECT_EQ(code, 0) << out;  // training goes on; the loss of the metrics is reported
  EXPECT_TRUE(contains(out, "log.metrics_file: cannot write /dev/full (writing failed at step 1: No space left on "
                            "device); no more metrics go to it"))
      << out;
  EXPECT_TRUE(contains(out, "log.metrics_file: /dev/full is incomplete")) << out;
}
