#include "core/memory.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "core/stream.h"

#if TESSERA_WITH_CUDA
#include "core/cuda_check.h"
#endif

namespace tessera {

namespace {

// Host memory: tracked so that the trainer can report real peaks next to its estimates.
struct HostCounters {
  std::atomic<size_t> allocated{0};
  std::atomic<size_t> peak{0};

  void add(size_t n) {
    size_t now = allocated.fetch_add(n) + n;
    size_t seen = peak.load();
    while (now > seen && !peak.compare_exchange_weak(seen, now)) {
    }
  }
  void sub(size_t n) { allocated.fetch_sub(n); }
};

HostCounters& host_counters() {
  static HostCounters counters;
  return counters;
}

constexpr size_t kHostAlignment = 64;
constexpr size_t kPageAlignment = 4096;  // pinned memory's, for O_DIRECT

std::shared_ptr<void> allocate_host(size_t nbytes, size_t alignment = kHostAlignment) {
  size_t rounded = (nbytes + alignment - 1) / alignment * alignment;
  void* p = std::aligned_alloc(alignment, rounded == 0 ? alignment : rounded);
  TS_CHECK(p, "out of host memory: could not allocate {} bytes", nbytes);
  host_counters().add(rounded);
  return std::shared_ptr<void>(p, [rounded](void* ptr) {
    std::free(ptr);
    host_counters().sub(rounded);
  });
}

#if TESSERA_WITH_CUDA

constexpr size_t kSmallLimit = 1 << 20;   // requests below this round to 512 B
constexpr size_t kSmallRound = 512;
constexpr size_t kLargeRound = 2 << 20;  // and the rest to 2 MiB

size_t round_size(size_t n) {
  if (n < kSmallLimit) return std::max(kSmallRound, (n + kSmallRound - 1) / kSmallRound * kSmallRound);
  return (n + kLargeRound - 1) / kLargeRound * kLargeRound;
}

// A cached block may serve a request somewhat smaller than itself; bounded so that a huge
// cached block is not pinned down by a tiny tensor.
bool fits(size_t block, size_t want) {
  return block >= want && (want < kSmallLimit ? block <= 2 * want : block <= want + want / 8 + kLargeRound);
}

struct Block {
  void* ptr = nullptr;
  size_t size = 0;
  int device = 0;
  Stream stream = nullptr;
  std::vector<Stream> other_streams;  // from record_stream
  std::vector<Event> pending;         // events those streams must pass before reuse
};

class CachingAllocator {
 public:
  static CachingAllocator& get() {
    static auto* instance = new CachingAllocator();  // never destroyed: frees may run at exit
    return *instance;
  }

  void* allocate(size_t nbytes, int device, Stream stream) {
    const size_t size = round_size(nbytes);
    std::lock_guard lock(mu_);
    collect_pending();
    auto key = std::make_tuple(device, stream, size);
    auto it = free_.lower_bound(key);
    Block* block = nullptr;
    if (it != free_.end() && std::get<0>(it->first) == device && std::get<1>(it->first) == stream &&
        fits(std::get<2>(it->first), size)) {
      block = it->second;
      free_.erase(it);
    } else {
      block = new Block{nullptr, size, device, stream, {}, {}};
      block->ptr = device_malloc(size, device);
      stats_[device].reserved += size;
    }
    live_[block->ptr] = block;
    auto& s = stats_[device];
    s.allocated += block->size;
    s.peak_allocated = std::max(s.peak_allocated, s.allocated);
    return block->ptr;
  }

  void free(void* ptr) {
    std::lock_guard lock(mu_);
    auto it = live_.find(ptr);
    if (it == live_.end()) return;
    Block* block = it->second;
    live_.erase(it);
    stats_[block->device].allocated -= block->size;
    if (block->other_streams.empty()) {
      free_.emplace(std::make_tuple(block->device, block->stream, block->size), block);
      return;
    }
    int previous = 0;
    cudaGetDevice(&previous);
    cudaSetDevice(block->device);
    for (Stream s : block->other_streams) {
      block->pending.emplace_back();
      block->pending.back().record(s);
    }
    cudaSetDevice(previous);
    block->other_streams.clear();
    pending_.push_back(block);
  }

  void record_stream(void* ptr, Stream stream) {
    std::lock_guard lock(mu_);
    auto it = live_.find(ptr);
    TS_CHECK(it != live_.end(), "record_stream: pointer is not a live CUDA block");
    Block* block = it->second;
    if (stream == block->stream) return;
    for (Stream s : block->other_streams)
      if (s == stream) return;
    block->other_streams.push_back(stream);
  }

  MemoryStats stats(int device) {
    std::lock_guard lock(mu_);
    return stats_[device];
  }

  void reset_peak(int device) {
    std::lock_guard lock(mu_);
    stats_[device].peak_allocated = stats_[device].allocated;
  }

  void empty_cache(int device) {
    std::lock_guard lock(mu_);
    release_cached(device);
  }

 private:
  void* device_malloc(size_t size, int device) {
    int previous = 0;
    TS_CUDA_CHECK(cudaGetDevice(&previous));
    TS_CUDA_CHECK(cudaSetDevice(device));
    void* ptr = nullptr;
    cudaError_t err = cudaMalloc(&ptr, size);
    if (err == cudaErrorMemoryAllocation) {  // give the cache back and try once more
      cudaGetLastError();
      cudaDeviceSynchronize();
      collect_pending();
      release_cached(device);
      err = cudaMalloc(&ptr, size);
    }
    if (err != cudaSuccess) {
      cudaGetLastError();
      size_t free_bytes = 0, total_bytes = 0;
      cudaMemGetInfo(&free_bytes, &total_bytes);
      cudaSetDevice(previous);
      const auto& s = stats_[device];
      fail("CUDA out of memory on cuda:{}: could not allocate {:.2f} MiB (tensors hold {:.2f} MiB, "
           "reserved {:.2f} MiB, device free {:.2f} of {:.2f} MiB)",
           device, size / 1048576.0, s.allocated / 1048576.0, s.reserved / 1048576.0,
           free_bytes / 1048576.0, total_bytes / 1048576.0);
    }
    TS_CUDA_CHECK(cudaSetDevice(previous));
    return ptr;
  }

  void collect_pending() {
    for (size_t i = 0; i < pending_.size();) {
      Block* block = pending_[i];
      bool done = true;
      for (const Event& e : block->pending) done = done && e.ready();
      if (!done) {
        ++i;
        continue;
      }
      block->pending.clear();
      free_.emplace(std::make_tuple(block->device, block->stream, block->size), block);
      pending_[i] = pending_.back();
      pending_.pop_back();
    }
  }

  void release_cached(int device) {
    for (auto it = free_.begin(); it != free_.end();) {
      if (std::get<0>(it->first) != device) {
        ++it;
        continue;
      }
      cudaFree(it->second->ptr);
      stats_[device].reserved -= it->second->size;
      delete it->second;
      it = free_.erase(it);
    }
  }

  std::mutex mu_;
  std::multimap<std::tuple<int, Stream, size_t>, Block*> free_;
  std::unordered_map<void*, Block*> live_;
  std::vector<Block*> pending_;
  std::map<int, MemoryStats> stats_;
};

#endif  // TESSERA_WITH_CUDA

}  // namespace

std::shared_ptr<void> allocate(size_t nbytes, Device device, Stream stream) {
  if (device.is_cpu()) return allocate_host(nbytes);
#if TESSERA_WITH_CUDA
  if (!stream) stream = current_stream(device.index);
  void* ptr = CachingAllocator::get().allocate(nbytes, device.index, stream);
  return std::shared_ptr<void>(ptr, [](void* p) { CachingAllocator::get().free(p); });
#else
  (void)stream;
  fail("cannot allocate on {}: this build has no CUDA backend", device.str());
#endif
}

std::shared_ptr<void> allocate_pinned(size_t nbytes) {
#if TESSERA_WITH_CUDA
  if (cuda_device_count() > 0) {
    // cudaHostAlloc hands out small blocks (up to about 1 MiB) from shared pages at 512-byte
    // alignment (seen on the H100 machine, CUDA 13): one page more lets the block start on a page.
    void* raw = nullptr;
    const size_t padded = nbytes + kPageAlignment;
    TS_CUDA_CHECK(cudaHostAlloc(&raw, padded, cudaHostAllocPortable));
    host_counters().add(padded);
    const uintptr_t page = (reinterpret_cast<uintptr_t>(raw) + kPageAlignment - 1) / kPageAlignment * kPageAlignment;
    return std::shared_ptr<void>(reinterpret_cast<void*>(page), [raw, padded](void*) {
      cudaFreeHost(raw);
      host_counters().sub(padded);
    });
  }
#endif
  return allocate_host(nbytes, kPageAlignment);  // without a GPU there is nothing to pin for
}

void record_stream(const std::shared_ptr<void>& block, Stream stream) {
#if TESSERA_WITH_CUDA
  if (block && stream) CachingAllocator::get().record_stream(block.get(), stream);
#else
  (void)block;
  (void)stream;
#endif
}

MemoryStats memory_stats(Device device) {
  if (device.is_cpu()) {
    size_t now = host_counters().allocated.load();
    return {now, host_counters().peak.load(), now};
  }
#if TESSERA_WITH_CUDA
  return CachingAllocator::get().stats(device.index);
#else
  return {};
#endif
}

void reset_peak_memory(Device device) {
  if (device.is_cpu()) {
    host_counters().peak.store(host_counters().allocated.load());
    return;
  }
#if TESSERA_WITH_CUDA
  CachingAllocator::get().reset_peak(device.index);
#endif
}

void empty_cache(Device device) {
#if TESSERA_WITH_CUDA
  if (device.is_cuda()) CachingAllocator::get().empty_cache(device.index);
#else
  (void)device;
#endif
}

}  // namespace tessera
