#include "engine/config/offload_options.h"

namespace tessera {

offload::NvmeOptions nvme_options(const OffloadSection& section) {
  offload::NvmeOptions options;
  options.path = section.path;
  options.block_bytes = section.io_block_kb * 1024;
  options.queue_depth = static_cast<int>(section.io_queue_depth);
  return options;
}

}  // namespace tessera
