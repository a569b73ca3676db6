// Where each unit's slice of the compute-dtype working copy (what the all-gathers move) lives: on
// the training device, or, with parameter offload, in pinned host memory or a swap file, copied
// to the device just before its all-gather. The optimizer writes new slices through
// target()/commit(), from the CPU or from device kernels, whichever home the slice has.
//
// A swap file is read and written in pieces of one buffer of a PinnedPool of the swap's
// pinned_bytes: the only pinned memory it uses, however large the units (what the CPU writes for
// the disk waits in ordinary memory, one unit's slice). read_ahead() starts a unit's reads
// before its all-gather needs them; on_device() then waits only for what is still in flight.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "core/stream.h"
#include "core/tensor.h"
#include "offload/pinned_pool.h"
#include "zero/nvme_swap.h"
#include "zero/staging_ring.h"

namespace tessera {

class WorkingCopy {
 public:
  enum class Home { device, host, nvme };

  // `swap` and `rank` only for Home::nvme.
  WorkingCopy(const std::vector<int64_t>& shard_sizes, DType dtype, Device device, Home home,
              const NvmeSwap& swap = {}, int rank = 0);
  ~WorkingCopy();

  DType dtype() const { return dtype_; }

  // A tensor of the unit's shard size for its new values, written by the CPU (`host`) or by kernels
  // on the training device; every element must be written. Valid until commit().
  Tensor target(size_t unit, bool host);
  // Moves what target() received to the unit's home (GPU copies queue on the current stream).
  void commit(size_t unit);
  // The unit's slice on the training device for its all-gather; from a host or disk home, a fresh
  // copy queued on the current stream.
  Tensor on_device(size_t unit);
  // A swap-file home starts reading the unit with the pool buffers it can spare (never blocks on
  // the disk); the other homes have nothing to do ahead.
  void read_ahead(size_t unit);

 private:
  // Part of a unit's slice on its way between the disk and a pool buffer.
  struct Piece {
    size_t unit;
    int64_t first;  // its first element in the unit's slice
    offload::PinnedPool::Buffer buffer;
    offload::NvmeFile::Ticket ticket = 0;
  };
  struct Upload {  // a buffer a copy to the device still reads
    offload::PinnedPool::Buffer buffer;
    Event done;
  };

  Stream stream() const;
  // Swap-file home:
  Tensor view(const offload::PinnedPool::Buffer& buffer, int64_t n) const;
  offload::NvmeFile::Ticket transfer(const Piece& piece, bool write);  // the piece's part of its unit's region
  offload::PinnedPool::Buffer take();  // a free buffer, waiting for the oldest transfer holding one
  void reclaim();                      // gives back the buffers of finished uploads and writes
  void start_read(size_t unit, int64_t first, offload::PinnedPool::Buffer buffer);
  void read_from(size_t unit, int64_t first);  // starts the reads not in flight while a buffer is spare
  std::deque<Piece>::iterator find_read(size_t unit, int64_t first);
  void settle(std::deque<Piece>& pieces, size_t unit);  // waits out and drops the unit's transfers there
  void write(size_t unit, const Tensor& slice);

  DType dtype_;
  Device device_;
  Home home_kind_;
  std::vector<int64_t> sizes_;
  std::vector<Tensor> home_;     // device and host homes
  std::vector<Event> uploaded_;  // host home: the last copy to the device, which the CPU must not overtake
  StagingRing staging_;          // CPU-written slices on their way to the device
  Tensor pending_;               // what target() handed out, when it is not the home itself
  bool pending_staged_ = false;
  // Swap-file home: one aligned region per unit. The pool outlives the buffers on loan below.
  std::unique_ptr<offload::PinnedPool> pool_;
  int64_t piece_ = 0;  // elements per pool buffer
  std::unique_ptr<offload::NvmeFile> file_;
  std::vector<int64_t> offsets_;
  Tensor scratch_;                    // ordinary memory: what the CPU writes for the disk
  std::deque<Piece> reads_, writes_;  // in flight, oldest first
  std::deque<Upload> uploads_;
};

}  // namespace tessera
