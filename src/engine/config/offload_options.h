// From an offload section of the job config to the settings of the NVMe I/O layer.
#pragma once

#include "engine/config/job_config.h"
#include "offload/nvme_file.h"

namespace tessera {

// Swap-file options for a section with device nvme: its folder, request size and queue depth.
offload::NvmeOptions nvme_options(const OffloadSection& section);

}  // namespace tessera
