#include "model/kv_cache.h"

#include <algorithm>

#include "core/error.h"
#include "kernels/ops.h"

namespace tessera {

KvCache::KvCache(const ModelConfig& c, int64_t num_blocks, int64_t block_size, DType dtype, Device device)
    : num_blocks_(num_blocks), block_size_(block_size) {
  TS_CHECK(num_blocks > 0 && num_blocks <= INT32_MAX, "KV cache: {} blocks (need at least 1)", num_blocks);
  TS_CHECK(block_size > 0, "KV cache: block size {} must be positive", block_size);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    for (auto* list : {&k_, &v_}) {
      Tensor t = Tensor::empty({num_blocks, block_size, c.num_key_value_heads, c.head_dim}, dtype, device);
      ops::fill(t, 0.0f);  // a slot is read only after it is written, but keep NaNs out of the pool
      list->push_back(t);
    }
  }
  free_.resize(num_blocks);
  for (int64_t b = 0; b < num_blocks; ++b) free_[b] = static_cast<int32_t>(num_blocks - 1 - b);  // 0 first
}

int64_t KvCache::block_bytes(const ModelConfig& c, int64_t block_size, DType dtype) {
  return 2 * c.num_hidden_layers * block_size * c.num_key_value_heads * c.head_dim * dtype_size(dtype);
}

int64_t KvCache::blocks_for_bytes(const ModelConfig& c, int64_t block_size, DType dtype, int64_t bytes) {
  return bytes / block_bytes(c, block_size, dtype);
}

bool KvCache::reserve(BlockTable& table, int64_t tokens) {
  const int64_t need = blocks_needed(tokens, block_size_) - static_cast<int64_t>(table.size());
  if (need <= 0) return true;
  if (need > free_blocks()) return false;
  for (int64_t i = 0; i < need; ++i) {
    table.push_back(free_.back());
    free_.pop_back();
  }
  return true;
}

void KvCache::release(BlockTable& table) {
  free_.insert(free_.end(), table.rbegin(), table.rend());
  table.clear();
}

void KvCache::set_free_order(std::vector<int32_t> order) {
  std::vector<int32_t> a = order, b = free_;
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  TS_CHECK(a == b, "KvCache::set_free_order: not a permutation of the {} free blocks", free_.size());
  std::reverse(order.begin(), order.end());  // order[0] is taken first
  free_ = std::move(order);
}

}  // namespace tessera
