// The event relay: a step's events reach their callbacks on the relay's thread, in order, and
// the engine cannot hand a step over while the step before is still being delivered.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "engine/inference/event_relay.h"

using namespace tessera::inference;

TEST(EventRelay, DeliversEachStepInOrderOnItsOwnThread) {
  std::vector<std::vector<int32_t>> seen(3);
  std::atomic<int> foreign{0};
  const std::thread::id engine = std::this_thread::get_id();
  std::vector<std::shared_ptr<const EventCallback>> callbacks;
  for (size_t r = 0; r < seen.size(); ++r)
    callbacks.push_back(std::make_shared<const EventCallback>([&, r](const Event& e) {
      seen[r].push_back(e.token);
      foreign += std::this_thread::get_id() != engine;
    }));
  EventRelay relay;
  for (int32_t step = 0; step < 5; ++step) {
    for (size_t r = 0; r < seen.size(); ++r)
      if ((step + r) % 2 == 0) {
        Event e;
        e.token = step * 10 + static_cast<int32_t>(r);
        relay.add(callbacks[r], e);
      }
    relay.hand_over();
  }
  relay.flush();
  EXPECT_EQ(seen[0], (std::vector<int32_t>{0, 20, 40}));
  EXPECT_EQ(seen[1], (std::vector<int32_t>{11, 31}));
  EXPECT_EQ(seen[2], (std::vector<int32_t>{2, 22, 42}));
  EXPECT_EQ(foreign, 8);
}

// A callback that blocks holds the engine at its next hand-over, not later.
TEST(EventRelay, TheEngineWaitsForThePreviousStep) {
  std::atomic<bool> release{false}, handed{false};
  auto slow = std::make_shared<const EventCallback>([&](const Event&) {
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  EventRelay relay;
  relay.add(slow, Event{});
  relay.hand_over();  // returns at once: nothing was being delivered
  std::thread engine([&] {
    relay.add(slow, Event{});
    relay.hand_over();
    handed = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(handed);
  release = true;
  engine.join();
  EXPECT_TRUE(handed);
  relay.flush();
}
