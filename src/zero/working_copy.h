// Where each slot of the working copy (what the all-gathers move: a unit's compute-dtype slice of
// its trainable tensors, or the bytes of its frozen ones) lives: on the training device, or, with
// parameter offload, in an offload home (pinned host memory or a swap file, src/offload/home.h),
// copied to the device just before its all-gather. The optimizer writes new slices through
// target()/commit(), from the CPU or from device kernels, whichever home the slot has. A slot
// marked `on_host` (a frozen embedding the model reads row by row) lives in pinned host memory
// whatever the home, and is handed out there.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/tensor.h"
#include "offload/home.h"
#include "offload/staging_ring.h"

namespace tessera {

class WorkingCopy {
 public:
  enum class Home { device, host, nvme };
  struct Slot {
    int64_t numel = 0;
    DType dtype = DType::BF16;
    bool on_host = false;  // kept in pinned host memory and read there (written by the CPU only)
  };

  // `swap` and `rank` only for Home::nvme.
  WorkingCopy(std::vector<Slot> slots, Device device, Home home, const offload::NvmeSwap& swap = {}, int rank = 0);
  ~WorkingCopy();

  const Slot& slot(size_t index) const { return slots_.at(index); }

  // A tensor of the slot's size and dtype for its new values, written by the CPU (`host`) or by
  // kernels on the training device; every element must be written. Valid until commit().
  Tensor target(size_t slot, bool host);
  // Moves what target() received to the slot's home (GPU copies queue on the current stream).
  void commit(size_t slot);
  // The slot's values on the training device for its all-gather; from a host or disk home, a
  // fresh copy queued on the current stream. An on_host slot: its pinned host memory itself.
  Tensor on_device(size_t slot);
  // A swap-file home starts reading the slot with the pool buffers it can spare (never blocks on
  // the disk); the other homes have nothing to do ahead.
  void read_ahead(size_t slot);

 private:
  Tensor typed(const Tensor& bytes, size_t slot) const;  // a home's bytes as the slot's tensor
  Stream stream() const;

  std::vector<Slot> slots_;
  Device device_;
  std::vector<Tensor> on_device_;        // Home::device
  std::vector<Tensor> on_host_;          // the on_host slots' pinned memory (undefined for the others)
  std::unique_ptr<offload::Home> home_;  // Home::host and Home::nvme: every slot as bytes
  offload::StagingRing staging_;         // CPU-written slices on their way to the device home
  Tensor scratch_;                       // ordinary memory: what the CPU writes for a swap file
  Tensor pending_;                       // what target() handed out, when it is not the home itself
};

}  // namespace tessera
