// GPU memory, utilisation and power as Prometheus gauges, read through NVML when a scrape asks.
// NVML (libnvidia-ml.so.1, part of the NVIDIA driver) is opened with dlopen, so a machine without
// a driver needs nothing and simply has no GPU series.
#pragma once

#include "engine/metrics/registry.h"

namespace tessera::metrics {

// Adds, per GPU (label gpu="N"), tessera_gpu_memory_used_bytes, tessera_gpu_memory_total_bytes,
// tessera_gpu_utilization_ratio (the fraction of the last sample period a kernel ran) and
// tessera_gpu_power_watts. Returns the number of GPUs found (0 without NVML).
int add_gpu_metrics(Registry& registry);

// One GPU's utilisation (0..1) and power draw now; ok false without NVML or that GPU.
struct GpuSample {
  bool ok = false;
  double utilization = 0, power_watts = 0;
};
// The GPU that CUDA calls `cuda_ordinal` in this process: CUDA_VISIBLE_DEVICES (indices or UUIDs)
// maps it to NVML's numbering.
GpuSample sample_gpu(int cuda_ordinal);

}  // namespace tessera::metrics
