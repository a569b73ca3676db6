#include "offload/swap_file.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>

#include <fmt/format.h>

namespace tessera::offload {

std::unique_ptr<NvmeFile> open_swap_file(const NvmeSwap& swap, const std::string& what, int rank, int64_t bytes) {
  static std::atomic<int> serial{0};  // several stores in one process (tests) get files of their own
  const std::string name = fmt::format("tessera-{}-{}-{}-rank{}.swap", what, ::getpid(), serial++, rank);
  auto file = NvmeFile::create(swap.io, name, std::max<int64_t>(bytes, NvmeFile::kAlignment));
  ::unlink(file->file_path().c_str());  // the open descriptor keeps it; the disk space goes with it
  return file;
}

}  // namespace tessera::offload
