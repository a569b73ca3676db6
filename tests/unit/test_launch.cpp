// launch/tessera-launch: the mpirun command it builds, and a real two-rank run on this host.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>

#include "run_command.h"

namespace {

std::pair<int, std::string> launch(const std::string& args) {
  const auto r = tessera::testing_util::run_command(TESSERA_SOURCE_DIR "/launch/tessera-launch " + args);
  return {r.exit_code, r.output};
}

}  // namespace

TEST(Launch, BuildsOneRankPerGpuOnEveryHost) {
  auto [code, out] = launch("--dry-run --hosts node1,node2 --gpus-per-host 4 -- tessera train job.yaml");
  EXPECT_EQ(code, 0) << out;
  EXPECT_EQ(out.rfind("mpirun -np 8 --host node1:4\\,node2:4 --map-by ppr:4:node", 0), 0u) << out;
  EXPECT_NE(out.find("tessera train job.yaml"), std::string::npos) << out;
}

TEST(Launch, RunsRanksOnThisHost) {
  auto [code, out] = launch("--gpus-per-host 2 -- " TESSERA_BIN_DIR "/tessera env");
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("rank 0/2"), std::string::npos) << out;
  EXPECT_NE(out.find("rank 1/2"), std::string::npos) << out;
}

TEST(Launch, BadArgumentsAreOneLineErrors) {
  for (const char* args : {"--bogus -- true", "--gpus-per-host 0 -- true", "--hostfile /no/such/file -- true", ""}) {
    auto [code, out] = launch(args);
    EXPECT_EQ(code, 2) << args;
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << args << ": " << out;
  }
}

// SIGTERM to the launcher: every rank finishes its step and saves, and the launcher exits 0 (a bare
// mpirun exits 1 on SIGTERM even when every rank exits 0: Open MPI takes it as an abort).
TEST(Launch, SigtermStopsTheJobWithACheckpointAndExitsZero) {
  const std::string dir = ::testing::TempDir() + "launch_sigterm";
  const std::string script =
      "rm -rf " + dir + "; mkdir -p " + dir + " && cd " + dir + " || exit 1; " +
      TESSERA_SOURCE_DIR "/launch/tessera-launch --gpus-per-host 2 -- " TESSERA_BIN_DIR "/tessera train "
      TESSERA_SOURCE_DIR "/configs/tiny-cpu.yaml --set data.train=" TESSERA_SOURCE_DIR "/README.md"
      " --set train.steps=100000 --set checkpoint.dir=" + dir + "/ckpt --set checkpoint.every_steps=0"
      " --set log.metrics_file= --set log.every_steps=1 > log 2>&1 & pid=$!; "
      "for i in $(seq 600); do grep -q 'step 2/' log && break; sleep 0.1; done; "
      "kill -TERM $pid; wait $pid; echo \"launch exit $?\"; cat log; ls ckpt";
  const auto r = tessera::testing_util::run_command(script);
  EXPECT_NE(r.output.find("launch exit 0"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("stopped after step"), std::string::npos) << r.output;
  const size_t at = r.output.find("checkpoint saved: " + dir + "/ckpt/step-");
  ASSERT_NE(at, std::string::npos) << r.output;
  const std::string step = r.output.substr(at + dir.size() + 29, r.output.find('\n', at) - at - dir.size() - 29);
  EXPECT_TRUE(std::filesystem::exists(dir + "/ckpt/step-" + step + "/COMPLETE")) << step << "\n" << r.output;
  EXPECT_TRUE(std::filesystem::exists(dir + "/ckpt/step-" + step + "/state.h5")) << step;
}
