#include "engine/metrics/gpu_metrics.h"

#include <dlfcn.h>

#include <memory>
#include <string>

#include "core/log.h"

namespace tessera::metrics {

namespace {

// The few NVML entry points used, declared as the driver's ABI defines them (nvml.h).
using nvmlDevice_t = void*;
struct NvmlMemory {
  unsigned long long total, free, used;
};
struct NvmlUtilization {
  unsigned int gpu, memory;  // percent
};

struct Nvml {
  void* library = nullptr;
  int (*init)() = nullptr;
  int (*count)(unsigned int*) = nullptr;
  int (*handle)(unsigned int, nvmlDevice_t*) = nullptr;
  int (*memory)(nvmlDevice_t, NvmlMemory*) = nullptr;
  int (*utilization)(nvmlDevice_t, NvmlUtilization*) = nullptr;

  bool open() {
    library = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!library) return false;
    init = reinterpret_cast<int (*)()>(dlsym(library, "nvmlInit_v2"));
    count = reinterpret_cast<int (*)(unsigned int*)>(dlsym(library, "nvmlDeviceGetCount_v2"));
    handle = reinterpret_cast<int (*)(unsigned int, nvmlDevice_t*)>(dlsym(library, "nvmlDeviceGetHandleByIndex_v2"));
    memory = reinterpret_cast<int (*)(nvmlDevice_t, NvmlMemory*)>(dlsym(library, "nvmlDeviceGetMemoryInfo"));
    utilization = reinterpret_cast<int (*)(nvmlDevice_t, NvmlUtilization*)>(dlsym(library, "nvmlDeviceGetUtilizationRates"));
    return init && count && handle && memory && utilization && init() == 0;
  }
};

}  // namespace

int add_gpu_metrics(Registry& registry) {
  auto nvml = std::make_shared<Nvml>();
  unsigned int gpus = 0;
  if (!nvml->open() || nvml->count(&gpus) != 0 || gpus == 0) {
    spdlog::debug("metrics: no NVML, so no GPU memory or utilisation series");
    return 0;
  }
  registry.on_collect([&registry, nvml, gpus] {
    for (unsigned int i = 0; i < gpus; ++i) {
      nvmlDevice_t device = nullptr;
      if (nvml->handle(i, &device) != 0) continue;
      const Labels gpu{{"gpu", std::to_string(i)}};
      NvmlMemory mem{};
      if (nvml->memory(device, &mem) == 0) {
        registry.gauge("tessera_gpu_memory_used_bytes", "GPU memory in use (all processes)", gpu).set(double(mem.used));
        registry.gauge("tessera_gpu_memory_total_bytes", "GPU memory", gpu).set(double(mem.total));
      }
      NvmlUtilization use{};
      if (nvml->utilization(device, &use) == 0)
        registry.gauge("tessera_gpu_utilization_ratio", "Fraction of the last sample period a kernel ran", gpu)
            .set(use.gpu / 100.0);
    }
  });
  return static_cast<int>(gpus);
}

}  // namespace tessera::metrics
