#include "engine/watchdog.h"

#include "comm/world.h"
#include "core/log.h"

namespace tessera {

Watchdog::Watchdog(std::chrono::milliseconds timeout, int rank, std::function<void()> on_stall,
                   std::function<std::string()> who_stopped)
    : timeout_(timeout), rank_(rank), on_stall_(std::move(on_stall)), who_stopped_(std::move(who_stopped)),
      last_(std::chrono::steady_clock::now()) {
  if (!on_stall_) on_stall_ = [] { abort_world(3); };
  thread_ = std::thread([this] { run(); });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void Watchdog::beat(int64_t step) {
  std::lock_guard lock(mu_);
  last_ = std::chrono::steady_clock::now();
  step_ = step;
  suspended_ = false;
  wake_.notify_all();
}

void Watchdog::suspend() {
  std::lock_guard lock(mu_);
  suspended_ = true;
}

void Watchdog::run() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (suspended_) {
      wake_.wait(lock, [&] { return stopping_ || !suspended_; });
      continue;
    }
    const auto deadline = last_ + timeout_;
    if (wake_.wait_until(lock, deadline, [&] { return stopping_ || suspended_ || last_ + timeout_ > deadline; }))
      continue;
    const int64_t step = step_;
    lock.unlock();  // reading the heartbeats takes a moment; beat() must not wait for it
    const std::string why = who_stopped_ ? who_stopped_() : "a collective is waiting on a rank that died or hangs?";
    lock.lock();
    if (stopping_ || last_ + timeout_ > deadline) continue;  // progress after all, meanwhile
    lock.unlock();
    spdlog::error("rank {}: no progress for {} s after step {}; {}; taking the job down", rank_,
                  timeout_.count() / 1000.0, step, why);
    run_abort_hooks();  // before on_stall: a rank blocked in NCCL is released (ncclCommAbort)
    on_stall_();
    return;
  }
}

}  // namespace tessera
