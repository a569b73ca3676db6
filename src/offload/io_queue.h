// Reads and writes in flight on one file descriptor: io_uring where the kernel allows it, else
// synchronous pread/pwrite behind the same interface (old kernels, seccomp in containers).
// Not thread-safe: one owner thread.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>

namespace tessera::offload {

struct IoOp {
  uint64_t tag = 0;  // handed back in the result
  bool write = false;
  void* buf = nullptr;
  int64_t bytes = 0;  // below 2 GiB: results are 32-bit
  int64_t offset = 0;
};

struct IoResult {
  uint64_t tag = 0;
  int64_t result = 0;  // bytes moved (maybe fewer than asked), or -errno
};

class IoQueue {
 public:
  // A queue for `depth` operations in flight. With `use_io_uring` false, or when io_uring cannot
  // be set up, operations run synchronously (one warning per process says why).
  IoQueue(int fd, int depth, bool use_io_uring);
  ~IoQueue();
  IoQueue(const IoQueue&) = delete;
  IoQueue& operator=(const IoQueue&) = delete;

  bool async() const { return ring_ != nullptr; }
  int depth() const { return depth_; }
  int in_flight() const { return in_flight_; }

  // Queues one operation (in_flight() < depth()); submit() hands queued ones to the kernel.
  void push(const IoOp& op);
  void submit();
  // The next finished operation; with `block`, waits for one unless nothing is in flight.
  std::optional<IoResult> reap(bool block);

 private:
  struct Ring;
  int fd_;
  int depth_;
  int in_flight_ = 0;
  std::unique_ptr<Ring> ring_;
  std::deque<IoResult> done_;  // synchronous mode: results waiting to be reaped
};

}  // namespace tessera::offload
