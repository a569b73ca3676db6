// launch/tessera-launch: the mpirun command it builds, and a real two-rank run on this host.
#include <gtest/gtest.h>

#include <algorithm>
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
