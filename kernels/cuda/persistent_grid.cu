// The persistent grid helpers (persistent_grid.h): the occupancy query, cached.
#include <algorithm>
#include <map>
#include <mutex>
#include <tuple>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/persistent_grid.h"

namespace tessera::cuda {

int resident_blocks(const void* kernel, int threads, size_t shared, int device) {
  using Key = std::tuple<const void*, int, size_t, int>;
  static std::mutex mutex;
  static std::map<Key, int> cache;
  const Key key{kernel, threads, shared, device};
  const std::lock_guard<std::mutex> lock(mutex);
  if (const auto it = cache.find(key); it != cache.end()) return it->second;
  int per_sm = 0;
  TS_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, shared));
  const int blocks = std::max(1, per_sm) * sm_count(device);
  cache.emplace(key, blocks);
  return blocks;
}

unsigned persistent_blocks(int64_t items, int per_block, int resident) {
  const int64_t needed = (items + per_block - 1) / per_block;
  return static_cast<unsigned>(std::clamp<int64_t>(needed, 1, std::max(1, resident)));
}

}  // namespace tessera::cuda
