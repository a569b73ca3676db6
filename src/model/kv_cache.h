// The paged KV cache: per layer, keys and values in fixed-size blocks
// ([num_blocks, block_size, Hkv, D] each, the layout of ops::paged_attention), a free list of
// blocks, and block tables that map a sequence's positions to blocks: position p of a sequence
// lives in block table[p / block_size] at offset p % block_size. Blocks of one sequence need not
// be contiguous or in order. bf16 on the GPU by default, f32 on the CPU.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "model/model_config.h"

namespace tessera {

// Block table of one sequence: its blocks in position order.
using BlockTable = std::vector<int32_t>;

class KvCache {
 public:
  KvCache(const ModelConfig& config, int64_t num_blocks, int64_t block_size, DType dtype, Device device);

  // Bytes one block takes over all layers (keys and values).
  static int64_t block_bytes(const ModelConfig& config, int64_t block_size, DType dtype);
  // Blocks that fit in `bytes` (at least 1 is an error left to the caller).
  static int64_t blocks_for_bytes(const ModelConfig& config, int64_t block_size, DType dtype, int64_t bytes);

  int64_t num_blocks() const { return num_blocks_; }
  int64_t block_size() const { return block_size_; }
  int64_t free_blocks() const { return static_cast<int64_t>(free_.size()); }
  int64_t used_blocks() const { return num_blocks_ - free_blocks(); }
  static int64_t blocks_needed(int64_t tokens, int64_t block_size) { return (tokens + block_size - 1) / block_size; }

  // Grows `table` to hold `tokens` positions; false (and `table` unchanged) when the pool has too
  // few free blocks.
  bool reserve(BlockTable& table, int64_t tokens);
  // Returns the table's blocks to the pool and clears it.
  void release(BlockTable& table);

  // Which blocks come out of the free list first (tests fragment the pool with it): the list is
  // replaced by `order`, a permutation of the currently free blocks.
  void set_free_order(std::vector<int32_t> order);

  const Tensor& keys(int64_t layer) const { return k_[layer]; }
  const Tensor& values(int64_t layer) const { return v_[layer]; }

 private:
  int64_t num_blocks_, block_size_;
  std::vector<int32_t> free_;  // taken from the back
  std::vector<Tensor> k_, v_;
};

}  // namespace tessera
