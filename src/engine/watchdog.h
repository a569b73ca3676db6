// Takes the job down when a rank stops making progress (a collective that never completes because
// another rank died or hangs), instead of leaving every rank waiting forever. The trainer calls
// beat() after each step; if `timeout` passes without one, the watchdog logs this rank, its last
// step and what `who_stopped` says (engine/heartbeat.h: the rank whose heartbeat stopped), runs the abort hooks (comm/world.h: the NCCL communicator's ncclCommAbort) and then
// `on_stall` (by default abort_world: MPI_Abort ends every rank within seconds).
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace tessera {

class Watchdog {
 public:
  Watchdog(std::chrono::milliseconds timeout, int rank, std::function<void()> on_stall = nullptr,
           std::function<std::string()> who_stopped = nullptr);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  void beat(int64_t step);  // progress: the step just finished (also ends a suspension)
  void suspend();           // long work that is not a collective (a checkpoint save) follows

 private:
  void run();
  std::chrono::milliseconds timeout_;
  int rank_;
  std::function<void()> on_stall_;
  std::function<std::string()> who_stopped_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::chrono::steady_clock::time_point last_;
  int64_t step_ = 0;
  bool stopping_ = false;
  bool suspended_ = false;
  std::thread thread_;
};

}  // namespace tessera
