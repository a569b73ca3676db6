#include "engine/inference/event_relay.h"

namespace tessera::inference {

EventRelay::EventRelay() : thread_([this] { run(); }) {}

EventRelay::~EventRelay() {
  {
    std::unique_lock lock(mu_);
    changed_.wait(lock, [&] { return !delivering_; });
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void EventRelay::add(std::shared_ptr<const EventCallback> callback, Event event) {
  adding_.push_back({std::move(callback), std::move(event)});
}

void EventRelay::hand_over() {
  if (adding_.empty()) return;
  {
    std::unique_lock lock(mu_);
    changed_.wait(lock, [&] { return !delivering_; });
    handed_.swap(adding_);
    delivering_ = true;
  }
  changed_.notify_all();
  adding_.clear();
}

void EventRelay::flush() {
  std::unique_lock lock(mu_);
  changed_.wait(lock, [&] { return !delivering_; });
}

void EventRelay::run() {
  std::vector<Item> batch;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      changed_.wait(lock, [&] { return delivering_ || stopping_; });
      if (!delivering_) return;  // stopping, nothing left
      batch.swap(handed_);
    }
    for (const Item& item : batch) (*item.callback)(item.event);
    batch.clear();
    {
      std::lock_guard lock(mu_);
      delivering_ = false;
    }
    changed_.notify_all();
  }
}

}  // namespace tessera::inference
