// GPU memory and utilisation as Prometheus gauges, read through NVML when a scrape asks.
// NVML (libnvidia-ml.so.1, part of the NVIDIA driver) is opened with dlopen, so a machine without
// a driver needs nothing and simply has no GPU series.
#pragma once

#include "engine/metrics/registry.h"

namespace tessera::metrics {

// Adds, per GPU (label gpu="N"), tessera_gpu_memory_used_bytes, tessera_gpu_memory_total_bytes and
// tessera_gpu_utilization_ratio (the fraction of the last sample period a kernel ran). Returns the
// number of GPUs found (0 without NVML).
int add_gpu_metrics(Registry& registry);

}  // namespace tessera::metrics
