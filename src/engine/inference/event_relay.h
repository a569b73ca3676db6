// A step's events handed to a thread of their own as one batch, so that their callbacks (the
// server's wake-up of each stream's connection, one system call each) run while the engine
// computes the next step instead of before it. The engine hands a batch over only once the one
// before is delivered: it never runs more than a step ahead of the callbacks, so a slow callback
// still slows the engine rather than piling events up. Events run in the order they were added.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/inference/generator.h"

namespace tessera::inference {

class EventRelay {
 public:
  EventRelay();
  ~EventRelay();  // delivers what was handed over, then ends the thread
  EventRelay(const EventRelay&) = delete;
  EventRelay& operator=(const EventRelay&) = delete;

  // The engine's thread: `callback` gets `event` once this step's batch is handed over. The
  // callback must not throw.
  void add(std::shared_ptr<const EventCallback> callback, Event event);
  // The engine's thread: waits until the previous batch is delivered, then hands this one over.
  void hand_over();
  // Waits until everything handed over is delivered.
  void flush();

 private:
  struct Item {
    std::shared_ptr<const EventCallback> callback;
    Event event;
  };
  void run();

  std::vector<Item> adding_;  // this step's, touched by the engine's thread only
  std::mutex mu_;
  std::condition_variable changed_;
  std::vector<Item> handed_;  // the batch being delivered (under mu_)
  bool delivering_ = false, stopping_ = false;
  std::thread thread_;
};

}  // namespace tessera::inference
