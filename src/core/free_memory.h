// Memory still free for new allocations: the GPU's (cudaMemGetInfo) or the host's (MemAvailable).
#pragma once

#include <cstdint>

#include "core/device.h"

namespace tessera {

int64_t free_memory_bytes(Device device);

}  // namespace tessera
