// Where each unit's slice of the compute-dtype working copy (what the all-gathers move) lives: on
// the training device, or, with parameter offload, in pinned host memory, copied to the device
// just before its all-gather. The optimizer writes new slices through target()/commit(), from the
// CPU or from device kernels, whichever home the slice has.
#pragma once

#include <vector>

#include "core/stream.h"
#include "core/tensor.h"
#include "zero/staging_ring.h"

namespace tessera {

class WorkingCopy {
 public:
  enum class Home { device, host };

  WorkingCopy(const std::vector<int64_t>& shard_sizes, DType dtype, Device device, Home home);

  DType dtype() const { return dtype_; }
  Home home() const { return home_kind_; }

  // A tensor of the unit's shard size for its new values, written by the CPU (`host`) or by kernels
  // on the training device; every element must be written. Valid until commit().
  Tensor target(size_t unit, bool host);
  // Moves what target() received to the unit's home (GPU copies queue on the current stream).
  void commit(size_t unit);
  // The unit's slice on the training device for its all-gather; from a host home, a fresh copy
  // queued on the current stream.
  Tensor on_device(size_t unit);

 private:
  Stream stream() const;

  DType dtype_;
  Device device_;
  Home home_kind_;
  std::vector<Tensor> home_;
  std::vector<Event> uploaded_;  // host home: the last copy to the device, which the CPU must not overtake
  StagingRing staging_;          // device home written by the CPU
  Tensor pending_;               // what target() handed out, when it is not the home itself
  bool pending_staged_ = false;
};

}  // namespace tessera
