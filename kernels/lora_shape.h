// The shape of a batched multi-adapter LoRA product (ops::lora_batched), as the backends get it.
#pragma once

#include <cstdint>

namespace tessera {

// y, x: [rows, out], [rows, in]; a: [adapters, rank, in]; b: [adapters, out, rank] (rank: the
// largest rank among the adapters; each uses its first ranks[n]).
struct LoraBatchShape {
  int64_t rows = 0, in = 0, out = 0, adapters = 0, rank = 0;
};

}  // namespace tessera
