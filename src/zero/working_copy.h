// Where each unit's slice of the compute-dtype working copy (what the all-gathers move) lives: on
// the training device, or, with parameter offload, in pinned host memory or a swap file, copied
// to the device just before its all-gather. The optimizer writes new slices through
// target()/commit(), from the CPU or from device kernels, whichever home the slice has.
#pragma once

#include <deque>
#include <memory>
#include <vector>

#include "core/stream.h"
#include "core/tensor.h"
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

 private:
  Stream stream() const;
  Tensor write_slot(int64_t n);  // a staging buffer no swap-file write is still reading

  DType dtype_;
  Device device_;
  Home home_kind_;
  std::vector<int64_t> sizes_;
  std::vector<Tensor> home_;     // device and host homes
  std::vector<Event> uploaded_;  // host home: the last copy to the device, which the CPU must not overtake
  StagingRing staging_;          // CPU-written slices on their way to the device or the disk
  StagingRing fetch_ring_;       // disk home: slices read on their way to the device
  Tensor pending_;               // what target() handed out, when it is not the home itself
  bool pending_staged_ = false;
  std::unique_ptr<offload::NvmeFile> file_;  // disk home: one aligned region per unit
  std::vector<int64_t> offsets_;
  std::deque<int64_t> writes_;  // tickets, oldest first; one per staging buffer at most
};

}  // namespace tessera
