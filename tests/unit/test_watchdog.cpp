#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include "comm/world.h"
#include "engine/heartbeat.h"
#include "engine/watchdog.h"
#include "run_command.h"

using namespace tessera;
using namespace std::chrono_literals;

TEST(Watchdog, FiresWhenBeatsStop) {
  std::atomic<int> fired{0};
  {
    Watchdog dog(150ms, 0, [&] { ++fired; });
    for (int step = 1; step <= 5; ++step) {
      std::this_thread::sleep_for(40ms);
      dog.beat(step);
    }
    EXPECT_EQ(fired, 0) << "steady beats must keep it quiet";
    std::this_thread::sleep_for(400ms);
  }
  EXPECT_EQ(fired, 1);
}

TEST(Watchdog, SuspendedWhileSaving) {
  std::atomic<int> fired{0};
  {
    Watchdog dog(100ms, 0, [&] { ++fired; });
    dog.suspend();
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(fired, 0);
    dog.beat(1);
    std::this_thread::sleep_for(300ms);
  }
  EXPECT_EQ(fired, 1);
}

TEST(Watchdog, StaysQuietUntilDestroyed) {
  std::atomic<int> fired{0};
  { Watchdog dog(10s, 0, [&] { ++fired; }); }
  EXPECT_EQ(fired, 0);
}

TEST(Watchdog, RunsTheAbortHooksBeforeTakingTheJobDown) {
  std::atomic<int> calls{0}, removed_calls{0}, calls_seen_by_on_stall{-1};
  const int hook = add_abort_hook([&] { ++calls; });  // what the NCCL communicator registers
  remove_abort_hook(add_abort_hook([&] { ++removed_calls; }));
  {
    Watchdog dog(50ms, 0, [&] { calls_seen_by_on_stall = calls.load(); });
    std::this_thread::sleep_for(300ms);
  }
  EXPECT_EQ(calls_seen_by_on_stall, 1) << "ncclCommAbort must come before MPI_Abort";
  EXPECT_EQ(removed_calls, 0) << "a communicator already destroyed is not aborted";
  run_abort_hooks();
  EXPECT_EQ(calls, 1) << "hooks run once";
  remove_abort_hook(hook);  // gone already: harmless
}

// Ranks 0 and 2 beat; rank 1's file stopped counting (as a rank under SIGSTOP leaves it); rank 3
// never wrote one (another host without a shared folder).
TEST(Heartbeat, NamesTheRankThatStoppedCounting) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "heartbeat_names";
  std::filesystem::remove_all(dir);
  Heartbeat rank0(dir.string(), 0, 4, 20ms), rank2(dir.string(), 2, 4, 20ms);
  rank0.set_step(7);
  rank2.set_step(7);
  std::ofstream(dir / "rank-1") << "41 6\n";
  std::this_thread::sleep_for(50ms);
  const std::string said = rank0.who_stopped();
  EXPECT_NE(said.find("rank 1 (last finished step 6) stopped making progress"), std::string::npos) << said;
  EXPECT_EQ(said.find("rank 2"), std::string::npos) << said;
  EXPECT_NE(said.find("no heartbeat of rank(s) 3 in " + dir.string()), std::string::npos) << said;
  std::filesystem::remove(dir / "rank-1");
}

TEST(Heartbeat, AllAliveIsSaid) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "heartbeat_alive";
  std::filesystem::remove_all(dir);
  {
    Heartbeat rank0(dir.string(), 0, 2, 20ms), rank1(dir.string(), 1, 2, 20ms);
    EXPECT_EQ(rank1.who_stopped().find("stopped making progress"), std::string::npos);
    EXPECT_NE(rank1.who_stopped().find("every other rank's heartbeat is alive"), std::string::npos);
  }
  EXPECT_FALSE(std::filesystem::exists(dir)) << "the last rank out removes the folder";
}

// Three ranks of a real job, rank 1 stopped with SIGSTOP after step 2: the watchdog of rank 0 or 2
// names rank 1 once collective_timeout_s has passed, and the job ends (MPI_Abort) instead of hanging.
TEST(Heartbeat, WatchdogOfARealJobNamesTheStoppedRank) {
  const std::string dir = ::testing::TempDir() + "heartbeat_sigstop_" + std::to_string(getpid());  // runs may overlap
  const std::string script =
      "rm -rf " + dir + "; mkdir -p " + dir + " && cd " + dir + " || exit 1; " +
      TESSERA_SOURCE_DIR "/scripts/mpirun.sh -np 3 " TESSERA_BIN_DIR "/tessera train " TESSERA_SOURCE_DIR
      "/configs/tiny-cpu.yaml --set data.train=" TESSERA_SOURCE_DIR "/README.md --set train.steps=100000"
      " --set train.micro_batch_size=1 --set train.collective_timeout_s=5 --set checkpoint.dir=" + dir + "/ckpt"
      " --set checkpoint.every_steps=0 --set log.metrics_file= --set log.every_steps=1 > log 2>&1 & pid=$!; "
      "for i in $(seq 600); do grep -q 'step 2/' log && break; sleep 0.1; done; "
      "for p in $(pgrep -P $pid); do tr '\\0' '\\n' < /proc/$p/environ | grep -qx OMPI_COMM_WORLD_RANK=1 && "
      "kill -STOP $p && echo stopped $p; done; "
      "for i in $(seq 300); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done; "
      "kill -0 $pid 2>/dev/null && { echo 'still running'; kill -KILL $pid; }; wait $pid; echo \"mpirun exit $?\"; "
      "cat log";
  const auto r = tessera::testing_util::run_command(script);
  EXPECT_NE(r.output.find("stopped "), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("still running"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("mpirun exit 0"), std::string::npos) << r.output;
  // The first rank whose watchdog fires takes the job down (MPI_Abort), and Open MPI continues
  // rank 1 to kill it: a rank whose two looks at the heartbeats straddle that sees it beat again
  // and says all are alive. So at least one of ranks 0 and 2 names rank 1, and none names another.
  int named = 0;
  for (const char* rank : {"[rank 0]", "[rank 2]"}) {
    const size_t at = r.output.find(std::string(rank) + " [error] rank ");
    if (at == std::string::npos) continue;
    const std::string line = r.output.substr(at, r.output.find('\n', at) - at);
    EXPECT_NE(line.find("no progress for 5 s"), std::string::npos) << line;
    if (line.find("stopped making progress") == std::string::npos) continue;
    ++named;
    const std::string who = "rank 1 (last finished step ";
    const size_t n = line.find(who);
    ASSERT_NE(n, std::string::npos) << line;
    EXPECT_GE(std::stoll(line.substr(n + who.size())), 2) << line;  // stopped after step 2 or a little later
  }
  EXPECT_GE(named, 1) << r.output;
  // (Open MPI continues rank 1 to kill it, so it may speak last: of ranks already gone.)
}
