#include "engine/metrics/gpu_metrics.h"

#include <dlfcn.h>

#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

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
  int (*handle_by_uuid)(const char*, nvmlDevice_t*) = nullptr;
  int (*memory)(nvmlDevice_t, NvmlMemory*) = nullptr;
  int (*utilization)(nvmlDevice_t, NvmlUtilization*) = nullptr;
  int (*power)(nvmlDevice_t, unsigned int*) = nullptr;  // milliwatts

  bool open() {
    library = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!library) return false;
    init = reinterpret_cast<int (*)()>(dlsym(library, "nvmlInit_v2"));
    count = reinterpret_cast<int (*)(unsigned int*)>(dlsym(library, "nvmlDeviceGetCount_v2"));
    handle = reinterpret_cast<int (*)(unsigned int, nvmlDevice_t*)>(dlsym(library, "nvmlDeviceGetHandleByIndex_v2"));
    handle_by_uuid = reinterpret_cast<int (*)(const char*, nvmlDevice_t*)>(dlsym(library, "nvmlDeviceGetHandleByUUID"));
    memory = reinterpret_cast<int (*)(nvmlDevice_t, NvmlMemory*)>(dlsym(library, "nvmlDeviceGetMemoryInfo"));
    utilization = reinterpret_cast<int (*)(nvmlDevice_t, NvmlUtilization*)>(dlsym(library, "nvmlDeviceGetUtilizationRates"));
    power = reinterpret_cast<int (*)(nvmlDevice_t, unsigned int*)>(dlsym(library, "nvmlDeviceGetPowerUsage"));
    return init && count && handle && memory && utilization && init() == 0;
  }
};

// NVML, opened once per process; null without a driver.
std::shared_ptr<Nvml> nvml() {
  static const std::shared_ptr<Nvml> opened = [] {
    auto n = std::make_shared<Nvml>();
    return n->open() ? n : nullptr;
  }();
  return opened;
}

GpuSample sample(const Nvml& n, nvmlDevice_t device) {
  GpuSample s;
  NvmlUtilization use{};
  if (n.utilization(device, &use) != 0) return s;
  s.ok = true;
  s.utilization = use.gpu / 100.0;
  unsigned int milliwatts = 0;
  if (n.power && n.power(device, &milliwatts) == 0) s.power_watts = milliwatts / 1000.0;
  return s;
}

}  // namespace

int add_gpu_metrics(Registry& registry) {
  auto n = nvml();
  unsigned int gpus = 0;
  if (!n || n->count(&gpus) != 0 || gpus == 0) {
    spdlog::debug("metrics: no NVML, so no GPU memory or utilisation series");
    return 0;
  }
  registry.on_collect([&registry, n, gpus] {
    for (unsigned int i = 0; i < gpus; ++i) {
      nvmlDevice_t device = nullptr;
      if (n->handle(i, &device) != 0) continue;
      const Labels gpu{{"gpu", std::to_string(i)}};
      NvmlMemory mem{};
      if (n->memory(device, &mem) == 0) {
        registry.gauge("tessera_gpu_memory_used_bytes", "GPU memory in use (all processes)", gpu).set(double(mem.used));
        registry.gauge("tessera_gpu_memory_total_bytes", "GPU memory", gpu).set(double(mem.total));
      }
      const GpuSample s = sample(*n, device);
      if (!s.ok) continue;
      registry.gauge("tessera_gpu_utilization_ratio", "Fraction of the last sample period a kernel ran", gpu)
          .set(s.utilization);
      registry.gauge("tessera_gpu_power_watts", "GPU power draw", gpu).set(s.power_watts);
    }
  });
  return static_cast<int>(gpus);
}

GpuSample sample_gpu(int cuda_ordinal) {
  auto n = nvml();
  if (!n || cuda_ordinal < 0) return {};
  std::vector<std::string> visible;
  if (const char* env = std::getenv("CUDA_VISIBLE_DEVICES")) {
    std::stringstream list(env);
    for (std::string item; std::getline(list, item, ',');) visible.push_back(item);
  }
  nvmlDevice_t device = nullptr;
  if (static_cast<size_t>(cuda_ordinal) >= visible.size()) {
    if (n->handle(static_cast<unsigned int>(cuda_ordinal), &device) != 0) return {};
  } else if (const std::string& item = visible[cuda_ordinal]; item.rfind("GPU-", 0) == 0 || item.rfind("MIG-", 0) == 0) {
    if (!n->handle_by_uuid || n->handle_by_uuid(item.c_str(), &device) != 0) return {};
  } else {
    char* end = nullptr;
    const unsigned long index = std::strtoul(item.c_str(), &end, 10);
    if (end == item.c_str() || n->handle(static_cast<unsigned int>(index), &device) != 0) return {};
  }
  return sample(*n, device);
}

}  // namespace tessera::metrics
