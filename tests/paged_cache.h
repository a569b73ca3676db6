// Test batches for the paged KV cache ops: sequences whose keys sit in shuffled, non-contiguous
// blocks of a pool (interleaved between sequences, spare blocks unused), and a packed batch of
// query tokens mixing decode steps (one query at a sequence's last position) and prefill chunks
// (its last n positions), in shuffled order. Host tensors, f32 values.
#pragma once

#include <algorithm>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "random_tensors.h"

namespace tessera::testing_util {

struct PagedBatch {
  int64_t hq = 0, hkv = 0, d = 0, block_size = 0, num_blocks = 0;
  std::vector<int64_t> lengths;    // keys of each sequence in the cache
  std::vector<int64_t> seq_start;  // first row of each sequence in k_rows / v_rows
  Tensor k_rows, v_rows;           // [sum of lengths, hkv, d]: every sequence's keys, one after another
  Tensor slots;                    // int32 [sum of lengths]: the cache slot of each row
  Tensor block_tables;             // int32 [sequences, max_blocks]; -1 past each sequence's last block
  Tensor q;                        // [tokens, hq, d]
  Tensor query_seq, query_pos;     // int32 [tokens]
  int64_t tokens() const { return q.size(0); }
};

// lengths[s] keys per sequence; queries[s] of them (its last positions) are queried (1: a decode step).
inline PagedBatch make_paged_batch(const std::vector<int64_t>& lengths, const std::vector<int64_t>& queries,
                                   int64_t hq, int64_t hkv, int64_t d, int64_t block_size, uint64_t seed,
                                   int64_t spare_blocks = 3) {
  std::mt19937_64 gen(seed);
  PagedBatch b;
  b.hq = hq, b.hkv = hkv, b.d = d, b.block_size = block_size, b.lengths = lengths;
  const int64_t seqs = static_cast<int64_t>(lengths.size());
  int64_t rows = 0, used_blocks = 0, max_blocks = 0;
  std::vector<int64_t> blocks_of(seqs);
  for (int64_t s = 0; s < seqs; ++s) {
    b.seq_start.push_back(rows);
    rows += lengths[s];
    blocks_of[s] = (lengths[s] + block_size - 1) / block_size;
    used_blocks += blocks_of[s];
    max_blocks = std::max(max_blocks, blocks_of[s] + 1);
  }
  b.num_blocks = used_blocks + spare_blocks;
  std::vector<int32_t> pool(b.num_blocks);
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), gen);

  // Blocks are handed out round-robin over the sequences, as a pool serving a batch would.
  std::vector<int32_t> table(seqs * max_blocks, -1);
  size_t next = 0;
  for (int64_t i = 0; i < max_blocks; ++i)
    for (int64_t s = 0; s < seqs; ++s)
      if (i < blocks_of[s]) table[s * max_blocks + i] = pool[next++];
  std::vector<int32_t> slots(rows);
  for (int64_t s = 0; s < seqs; ++s)
    for (int64_t p = 0; p < lengths[s]; ++p)
      slots[b.seq_start[s] + p] = int32_t(table[s * max_blocks + p / block_size] * block_size + p % block_size);

  std::vector<std::pair<int32_t, int32_t>> tokens;  // (sequence, position)
  for (int64_t s = 0; s < seqs; ++s)
    for (int64_t p = lengths[s] - queries[s]; p < lengths[s]; ++p) tokens.emplace_back(int32_t(s), int32_t(p));
  std::shuffle(tokens.begin(), tokens.end(), gen);
  std::vector<int32_t> query_seq, query_pos;
  for (auto [s, p] : tokens) query_seq.push_back(s), query_pos.push_back(p);

  const int64_t t = static_cast<int64_t>(tokens.size());
  b.k_rows = random_tensor({rows, hkv, d}, DType::F32, Device::cpu(), seed + 1);
  b.v_rows = random_tensor({rows, hkv, d}, DType::F32, Device::cpu(), seed + 2);
  b.q = random_tensor({t, hq, d}, DType::F32, Device::cpu(), seed + 3);
  b.slots = Tensor::from_vector(slots, {rows}, DType::I32);
  b.block_tables = Tensor::from_vector(table, {seqs, max_blocks}, DType::I32);
  b.query_seq = Tensor::from_vector(query_seq, {t}, DType::I32);
  b.query_pos = Tensor::from_vector(query_pos, {t}, DType::I32);
  return b;
}

}  // namespace tessera::testing_util
