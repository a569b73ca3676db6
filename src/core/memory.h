// Memory for tensors: host, pinned host, and a stream-aware caching allocator per CUDA device.
//
// CUDA blocks are cached per (device, stream) after free and handed out again to the same
// stream without synchronisation (stream order makes that safe). A block used on another
// stream must be marked with record_stream(); on free it then waits on events for those streams
// before reuse, as PyTorch's allocator does. Sizes round up to 512 B (small) or 2 MiB (large).
#pragma once

#include <cstddef>
#include <memory>

#include "core/device.h"

namespace tessera {

struct MemoryStats {
  size_t allocated = 0;       // bytes held by live tensors
  size_t peak_allocated = 0;  // high-water mark of `allocated` since the last reset
  size_t reserved = 0;        // bytes obtained from the driver (live + cached); host: == allocated
};

// Owning pointer to `nbytes` of memory on `device`; freed (or cached) when the last owner goes.
// On CUDA the block belongs to `stream` (default: the device's current stream).
std::shared_ptr<void> allocate(size_t nbytes, Device device, Stream stream = nullptr);

// Page-locked host memory for fast asynchronous copies (plain host memory in CPU-only builds).
// Page aligned (4096 bytes) either way, so it can also serve O_DIRECT file I/O.
std::shared_ptr<void> allocate_pinned(size_t nbytes);

// Marks a CUDA block as used on `stream`, so that its reuse waits for work queued there.
void record_stream(const std::shared_ptr<void>& block, Stream stream);

MemoryStats memory_stats(Device device);  // pinned host memory is reported with Device::cpu()
void reset_peak_memory(Device device);
void empty_cache(Device device);  // returns cached CUDA blocks to the driver

}  // namespace tessera
