// Each rank's liveness, where every other rank can read it without that rank's help: one small
// file per rank in a folder the ranks share (the checkpoint folder, which a multi-host job shares
// already; a temporary folder on one host otherwise). A thread rewrites the rank's file every
// `period` with a counter and the last finished step, so a rank that is stopped (SIGSTOP), dead or
// frozen stops counting while ranks blocked in a collective keep theirs moving. The watchdog asks
// it which rank stopped when a step makes no progress.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace tessera {

class Heartbeat {
 public:
  Heartbeat(std::string dir, int rank, int world_size, std::chrono::milliseconds period);
  ~Heartbeat();  // stops beating and removes this rank's file
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;

  void set_step(int64_t step);  // the step this rank has just finished

  // Reads every other rank's heartbeat twice, a few periods apart, and says which ranks stopped
  // counting (with their last finished step), or that all are alive, or which could not be read.
  std::string who_stopped() const;

 private:
  void run();
  void write(int64_t count);
  std::string path_of(int rank) const;

  std::string dir_;
  int rank_, world_size_;
  std::chrono::milliseconds period_;
  std::mutex mu_, write_mu_;
  std::atomic<int64_t> count_{0};
  std::condition_variable wake_;
  int64_t step_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace tessera
