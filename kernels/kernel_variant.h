// Kernel variants picked by an environment variable (TESSERA_ATTN_FWD, TESSERA_PAGED_ATTN, ...),
// for benchmarks and the tests that check every variant: read at each call, so a test can switch.
#pragma once

namespace tessera {

// The variant environment variable `name` names, "v1" .. "v<count>" as 1 .. count; unset or
// empty: `fallback`. Anything else is an Error naming the variable and what it takes.
int kernel_variant(const char* name, int count, int fallback);

}  // namespace tessera
