// Where shards that leave the GPU live: pinned host memory, or a swap file on a local disk
// streamed in pieces through a bounded pool of pinned buffers (PieceStream). A home holds
// regions (one per unit shard), each `parts` arrays of one length and dtype (optimizer state:
// master weights and the two Adam moments; a working copy: its bytes), zero-filled at first.
// The optimizer state streams through its regions; a working copy uploads and stores part 0.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "offload/swap_file.h"

namespace tessera::offload {

struct HomeLayout {
  DType dtype = DType::F32;
  int parts = 1;
  std::vector<int64_t> lengths;  // elements of each part, per region
};

class Home {
 public:
  // parts: host tensors holding elements [first, first + parts[0].numel()) of each part of `region`.
  using PieceFn = std::function<void(size_t region, int64_t first, const std::vector<Tensor>& parts)>;

  virtual ~Home() = default;
  // fn on every piece of `regions` in that order (pinned: a region is one piece), the next ones
  // read while fn works; with `write`, what fn leaves in a piece is kept (written behind it).
  virtual void stream(const std::vector<size_t>& regions, bool write, const PieceFn& fn) = 0;
  // Part 0 of `region` into `dst` (its length and dtype, any device): copies to a GPU are queued
  // on its current stream and not waited for.
  virtual void upload(size_t region, const Tensor& dst) = 0;
  // Part 0 of `region` from `src` (its length and dtype; a device tensor is waited for).
  virtual void store(size_t region, const Tensor& src) = 0;
  // Part 0 of `region` in host memory to write in place (once no upload reads it any more), or
  // undefined where the home is not resident (a swap file: store() instead).
  virtual Tensor resident(size_t region) = 0;
  // Starts reading `region` with the pool buffers that can be spared, never waiting for the disk
  // (a resident home has nothing to do).
  virtual void read_ahead(size_t region) = 0;
};

std::unique_ptr<Home> make_pinned_home(const HomeLayout& layout);
// A swap file under swap.io.path named after `what` and the rank, pieces through a pool of
// swap.pinned_bytes; fails (one line) before anything else when the folder is missing or the
// disk has no room.
std::unique_ptr<Home> make_nvme_home(const HomeLayout& layout, const NvmeSwap& swap, const std::string& what, int rank);

}  // namespace tessera::offload
