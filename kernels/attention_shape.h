// The sizes of one attention call, worked out once by ops::attention_* for both backends.
#pragma once

#include <cstdint>

namespace tessera {

// q, out: [b, s, hq, d]; k, v: [b, s, hkv, d]; lse: [b, hq, s]; segment_ids: [b, s].
struct AttentionShape {
  int64_t b = 0, s = 0, hq = 0, hkv = 0, d = 0;
  int64_t group() const { return hq / hkv; }  // query heads per kv head
};

}  // namespace tessera
