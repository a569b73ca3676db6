#include <gtest/gtest.h>

#include <atomic>

#include "comm/world.h"
#include "engine/watchdog.h"

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
