// The sizes of one attention call, worked out once by the op table (ops::attention_*, ops::paged_*) for both backends.
#pragma once

#include <cstdint>

namespace tessera {

// q, out: [b, s, hq, d]; k, v: [b, s, hkv, d]; lse: [b, hq, s]; segment_ids: [b, s].
struct AttentionShape {
  int64_t b = 0, s = 0, hq = 0, hkv = 0, d = 0;
  int64_t group() const { return hq / hkv; }  // query heads per kv head
};

// The sizes of one paged-KV-cache call (ops::paged_kv_write, ops::paged_attention), worked out once
// by the op table for both backends.
// q, out: [tokens, hq, d]; new k, v: [tokens, hkv, d]; k_cache, v_cache: [blocks, block_size, hkv, d];
// block_tables: [seqs, max_blocks] (paged_attention only).
struct PagedShape {
  int64_t tokens = 0, hq = 0, hkv = 0, d = 0, blocks = 0, block_size = 0, seqs = 0, max_blocks = 0;
  int64_t group() const { return hq / hkv; }              // query heads per kv head
  int64_t slots() const { return blocks * block_size; }  // token slots in the cache
};

}  // namespace tessera
