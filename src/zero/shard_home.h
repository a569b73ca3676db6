// Where the fp32 master weights and Adam moments of CPU-stepped optimizer state live: pinned host
// memory, or files on a local disk (NVMe) streamed through a bounded pool of pinned buffers, read
// ahead of the unit being stepped and written behind it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "zero/nvme_swap.h"
#include "zero/optimizer_state.h"

namespace tessera {

class ShardHome {
 public:
  virtual ~ShardHome() = default;
  // fn(unit, state, first) over the units in `order`, in host memory, in pieces where the state
  // streams; with `write`, what fn leaves in a piece is kept.
  virtual void stream(const std::vector<size_t>& order, bool write, const StateVisitor& fn) = 0;
};

std::unique_ptr<ShardHome> make_pinned_home(const std::vector<UnitShard>& units);
// A swap file per rank under swap.io.path; fails (one line) before anything else when the folder
// is missing or the disk has no room.
std::unique_ptr<ShardHome> make_nvme_home(const std::vector<UnitShard>& units, const NvmeSwap& swap, int rank);

}  // namespace tessera
