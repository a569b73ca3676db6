// A 64-bit fingerprint of a tokenizer, stored in prepare-data shards so that training refuses
// shards made with another tokenizer.
#pragma once

#include <cstdint>

#include "io/tokenizer/tokenizer.h"

namespace tessera::data {

// FNV-1a over the vocabulary (every id's token), the special token ids, add_bos_token, the chat
// template and the encoding of a fixed probe text (which catches merges and normalizers).
uint64_t tokenizer_fingerprint(const tok::Tokenizer& tokenizer);

}  // namespace tessera::data
