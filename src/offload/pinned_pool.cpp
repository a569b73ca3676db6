#include "offload/pinned_pool.h"

#include <cstdint>

#include "core/error.h"
#include "core/memory.h"
#include "offload/nvme_file.h"

namespace tessera::offload {

PinnedPool::Buffer::Buffer(Buffer&& other) noexcept : pool_(other.pool_), index_(other.index_) {
  other.pool_ = nullptr;
  other.index_ = -1;
}

PinnedPool::Buffer& PinnedPool::Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    reset();
    pool_ = other.pool_;
    index_ = other.index_;
    other.pool_ = nullptr;
    other.index_ = -1;
  }
  return *this;
}

void* PinnedPool::Buffer::data() const {
  if (!pool_) return nullptr;
  return static_cast<char*>(pool_->memory_.get()) + index_ * pool_->buffer_bytes_;
}

int64_t PinnedPool::Buffer::bytes() const { return pool_ ? pool_->buffer_bytes_ : 0; }

void PinnedPool::Buffer::reset() {
  if (!pool_) return;
  pool_->release(index_);
  pool_ = nullptr;
  index_ = -1;
}

PinnedPool::PinnedPool(int64_t buffer_bytes, int count)
    : buffer_bytes_(NvmeFile::aligned(buffer_bytes)), count_(count) {
  TS_CHECK(buffer_bytes > 0 && count > 0, "pinned staging pool: need a positive buffer size and count, got {} x {} bytes",
           count, buffer_bytes);
  memory_ = allocate_pinned(static_cast<size_t>(buffer_bytes_) * count);
  TS_CHECK(reinterpret_cast<uintptr_t>(memory_.get()) % NvmeFile::kAlignment == 0,
           "pinned staging pool: the allocation is not {}-byte aligned", NvmeFile::kAlignment);
  for (int i = count - 1; i >= 0; --i) free_.push_back(i);
}

PinnedPool::Buffer PinnedPool::acquire() {
  std::unique_lock lock(mu_);
  returned_.wait(lock, [&] { return !free_.empty(); });
  int index = free_.back();
  free_.pop_back();
  return Buffer(this, index);
}

int PinnedPool::available() const {
  std::lock_guard lock(mu_);
  return static_cast<int>(free_.size());
}

void PinnedPool::release(int index) {
  {
    std::lock_guard lock(mu_);
    free_.push_back(index);
  }
  returned_.notify_one();
}

}  // namespace tessera::offload
