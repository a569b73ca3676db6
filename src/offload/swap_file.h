// Settings of one NVMe swapper (optimizer state or working copy), and its swap file: made and
// checked when the store is built, so a missing folder or a full disk is one error before
// training starts; unlinked at once, so nothing is left behind however the job ends.
#pragma once

#include <memory>
#include <string>

#include "offload/nvme_file.h"

namespace tessera::offload {

struct NvmeSwap {
  NvmeOptions io;
  int64_t pinned_bytes = int64_t{256} << 20;  // pinned staging memory this swapper may use
  int units_in_flight = 2;                    // pieces of state read ahead of the one being stepped
};

// A fresh swap file of `bytes` under swap.io.path, named after `what`, this process and the rank.
std::unique_ptr<NvmeFile> open_swap_file(const NvmeSwap& swap, const std::string& what, int rank, int64_t bytes);

}  // namespace tessera::offload
