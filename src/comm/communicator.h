// Collectives over the ranks of the job. MpiCommunicator moves host tensors; NcclCommunicator
// moves GPU tensors on a communication stream of its own, so compute can overlap with it.
//
// Every collective returns a Work to wait on. For NCCL, wait() makes the caller's current
// stream wait for the collective (the host does not block) and synchronize() blocks the host;
// for MPI both block until the data is there. Input and output must not be touched before then,
// but they may be dropped at once: the Work (MPI) or the allocator (NCCL) keeps them alive.
//
// Uneven sizes: collectives move equal chunks per rank. A flat buffer of `numel` elements is
// split by ShardLayout: every rank owns `shard = ceil(numel / world)` slots, rank r holding
// elements [r * shard, min((r + 1) * shard, numel)); the buffer that is gathered or reduced is
// padded with zeros at the end to `world * shard` elements. The last ranks' shards may be
// partly (or wholly) padding.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "comm/world.h"
#include "core/tensor.h"

namespace tessera {

enum class ReduceOp { Sum, Avg, Max };

struct ShardLayout {
  int64_t numel = 0;
  int world = 1;
  int64_t shard = 0;

  ShardLayout(int64_t numel, int world) : numel(numel), world(world), shard((numel + world - 1) / world) {}
  int64_t padded() const { return shard * world; }
  int64_t begin(int rank) const { return std::min(rank * shard, numel); }
  int64_t end(int rank) const { return std::min((rank + 1) * shard, numel); }
  int64_t owned(int rank) const { return end(rank) - begin(rank); }  // real (unpadded) elements
};

class [[nodiscard]] Work {
 public:
  Work() = default;  // already complete
  Work(std::function<void()> wait, std::function<void()> synchronize)
      : wait_(std::move(wait)), synchronize_(std::move(synchronize)) {}
  void wait() {
    if (wait_) timed(std::exchange(wait_, nullptr));
  }
  void synchronize() {
    wait();
    if (synchronize_) timed(std::exchange(synchronize_, nullptr));
  }

  // Seconds this thread has spent blocked in wait() and synchronize(), since it started: the
  // trainer's "waiting on collectives" (for NCCL's wait(), which only orders streams, about 0).
  static double blocked_seconds() { return blocked_ns_ * 1e-9; }

 private:
  // Only the outermost wait counts: a Work's wait may wait for others (a bucket's pieces).
  static void timed(const std::function<void()>& fn) {
    if (waiting_) return fn();
    waiting_ = true;
    const auto start = std::chrono::steady_clock::now();
    try {
      fn();
    } catch (...) {
      waiting_ = false;
      throw;
    }
    waiting_ = false;
    blocked_ns_ += std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count();
  }
  static inline thread_local int64_t blocked_ns_ = 0;
  static inline thread_local bool waiting_ = false;

  std::function<void()> wait_;
  std::function<void()> synchronize_;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // out (size() * n elements) = every rank's `in` (n elements), in rank order.
  virtual Work all_gather(const Tensor& out, const Tensor& in) = 0;
  // out (n elements) = op over ranks of chunk rank() of `in` (size() * n elements).
  virtual Work reduce_scatter(const Tensor& out, const Tensor& in, ReduceOp op) = 0;
  // Several reduce-scatters (outs[i], ins[i]) started together: NCCL fuses them into one launch;
  // the default starts them one after another. One Work for all.
  virtual Work reduce_scatter_many(const std::vector<Tensor>& outs, const std::vector<Tensor>& ins, ReduceOp op) {
    auto works = std::make_shared<std::vector<Work>>();
    for (size_t i = 0; i < outs.size(); ++i) works->push_back(reduce_scatter(outs[i], ins[i], op));
    return Work([works] { for (Work& w : *works) w.wait(); }, [works] { for (Work& w : *works) w.synchronize(); });
  }
  // t = op over ranks of t, in place.
  virtual Work all_reduce(const Tensor& t, ReduceOp op) = 0;
  // t on every rank = t on `root`.
  virtual Work broadcast(const Tensor& t, int root) = 0;
  virtual void barrier() = 0;
};

// MPI over MPI_COMM_WORLD, for host tensors.
std::unique_ptr<Communicator> make_mpi_communicator(const World& world);
// MPI over this process alone (a world of one inside a larger job: references in tests).
std::unique_ptr<Communicator> make_self_communicator();
// NCCL over all ranks, for tensors on world.device; bootstrapped through MPI.
std::unique_ptr<Communicator> make_nccl_communicator(const World& world);
// The communicator for tensors on `device`: NCCL for CUDA, MPI for the CPU.
std::unique_ptr<Communicator> make_communicator(const World& world, Device device);

}  // namespace tessera
