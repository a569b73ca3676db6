// The int32 inputs of one InferenceModel step packed into one buffer, so that they reach the GPU
// in one copy, and the padding of a decode step to a fixed shape (a CUDA graph's bucket).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/sampling_row.h"
#include "model/kv_cache.h"

namespace tessera {

// One step's tokens, packed: token t belongs to sequence seq[t] (a row of block_tables) at
// position pos[t]; a sequence's tokens in a step are consecutive positions, and every earlier
// position of it is already in the cache.
struct StepInput {
  std::vector<int32_t> ids, seq, pos;
  std::vector<const BlockTable*> block_tables;  // per sequence; each holds blocks up to its last position
  std::vector<int64_t> logit_rows;              // tokens whose next-token logits are wanted
  // Per logit row: whether its full logits must come back to the host (sampling, penalties,
  // logprobs); the others come back as their greedy pick only. Empty: every row's.
  std::vector<uint8_t> full_logits;
  // Per sequence: its adapter in the model's AdapterBank, -1 the base. Empty: every sequence the base.
  std::vector<int32_t> adapter;
  // Per logit row: how the device picks its token (ops::sample_rows). Empty: every row greedy.
  std::vector<SamplingRow> sampling;
};

// Where each field lies in the packed buffer: ids[T], pos[T], seq[T], slots[T], rows[R] (the
// logit rows), the block tables [S, width], for a model with adapters each token's adapter [T],
// and each logit row's SamplingRow [R, 8] (its floats as their bits), one after another.
struct StepLayout {
  int64_t tokens = 0, seqs = 0, rows = 0, width = 0;
  bool adapters = false;

  int64_t ids() const { return 0; }
  int64_t pos() const { return tokens; }
  int64_t seq() const { return 2 * tokens; }
  int64_t slots() const { return 3 * tokens; }
  int64_t logit_rows() const { return 4 * tokens; }
  int64_t tables() const { return 4 * tokens + rows; }
  int64_t adapter() const { return 4 * tokens + rows + seqs * width; }
  int64_t sampling() const { return 4 * tokens + rows + seqs * width + (adapters ? tokens : 0); }
  int64_t size() const { return sampling() + 8 * rows; }
  bool operator==(const StepLayout&) const = default;
};

// `in` as it is: tables as wide as the longest.
StepLayout exact_layout(const StepInput& in);

// True for a decode step: one token per sequence (token t of sequence t), each a logit row in order.
bool is_decode_step(const StepInput& in);

// The smallest of 1, 2, 4, 8, 16, 32, 64, 128, 256, 384, 512, ... (then steps of 128) holding n.
int64_t decode_bucket(int64_t n);
// Block-table width for a decode step whose longest table has n blocks: a power of two >= 16, so
// that a growing context needs few distinct shapes.
int64_t decode_width(int64_t n);

// A decode step of in.ids.size() <= bucket tokens padded to `bucket`, tables `width` wide.
StepLayout padded_decode_layout(int64_t bucket, int64_t width);

// Checks `in` (ids in the vocabulary, sequences and logit rows in range, a block for every
// position) and writes it into out[layout.size()]. Tokens beyond in's (padding, up to
// layout.tokens) get id 0, position 0, a sequence of their own whose table is all block 0,
// slot -1 (paged_kv_write skips it), a logit row of their own (ignored by the caller, greedy) and,
// with layout.adapters, adapter -1. `adapters`: how many the model holds (in.adapter's values are in
// [-1, adapters)).
void pack_step(const StepInput& in, const StepLayout& layout, int64_t block_size, int64_t vocab, int32_t* out,
               int64_t adapters = 0);

}  // namespace tessera
