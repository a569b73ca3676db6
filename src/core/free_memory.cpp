#include "core/free_memory.h"

#include <fstream>
#include <string>

#include "core/error.h"

#if TESSERA_WITH_CUDA
#include <cuda_runtime.h>

#include "core/cuda_check.h"
#endif

namespace tessera {

int64_t free_memory_bytes(Device device) {
  if (device.is_cuda()) {
#if TESSERA_WITH_CUDA
    int previous = 0;
    TS_CUDA_CHECK(cudaGetDevice(&previous));
    TS_CUDA_CHECK(cudaSetDevice(device.index));
    size_t free_bytes = 0, total_bytes = 0;
    TS_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    TS_CUDA_CHECK(cudaSetDevice(previous));
    return static_cast<int64_t>(free_bytes);
#else
    throw Error("free_memory_bytes: this build has no CUDA backend");
#endif
  }
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  int64_t kb = 0;
  while (meminfo >> key >> kb) {
    if (key == "MemAvailable:") return kb * 1024;
    meminfo.ignore(256, '\n');
  }
  return 0;
}

}  // namespace tessera
