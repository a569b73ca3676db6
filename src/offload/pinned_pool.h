// A bounded set of page-locked staging buffers for NVMe offload. The pool is the only pinned
// memory the swapper uses, so host memory stays fixed however large the model is: a caller that
// wants a buffer while all are out waits until one comes back.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace tessera::offload {

class PinnedPool {
 public:
  // A buffer on loan; it goes back to the pool when the handle is destroyed (or reset).
  class Buffer {
   public:
    Buffer() = default;
    Buffer(Buffer&& other) noexcept;
    Buffer& operator=(Buffer&& other) noexcept;
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
    ~Buffer() { reset(); }

    void* data() const;    // 4096-aligned, as O_DIRECT needs
    int64_t bytes() const;  // the pool's buffer_bytes rounded up to 4096
    explicit operator bool() const { return pool_ != nullptr; }
    void reset();  // returns the buffer early

   private:
    friend class PinnedPool;
    Buffer(PinnedPool* pool, int index) : pool_(pool), index_(index) {}
    PinnedPool* pool_ = nullptr;
    int index_ = -1;
  };

  // `count` buffers of `buffer_bytes` (rounded up to 4096) in one pinned allocation.
  PinnedPool(int64_t buffer_bytes, int count);
  // Every Buffer must have come back before the pool goes.
  ~PinnedPool() = default;
  PinnedPool(const PinnedPool&) = delete;
  PinnedPool& operator=(const PinnedPool&) = delete;

  // Blocks until a buffer is free. Thread-safe.
  Buffer acquire();

  int64_t buffer_bytes() const { return buffer_bytes_; }
  int count() const { return count_; }
  int available() const;  // buffers not on loan now

 private:
  void release(int index);

  int64_t buffer_bytes_;
  int count_;
  std::shared_ptr<void> memory_;
  mutable std::mutex mu_;
  std::condition_variable returned_;
  std::vector<int> free_;
};

}  // namespace tessera::offload
