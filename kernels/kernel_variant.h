// Kernel variants picked by an environment variable (TESSERA_ATTN_FWD, TESSERA_PAGED_ATTN, ...),
// for benchmarks and the tests that check every variant: read at each call, so a test can switch.
#pragma once

#include <initializer_list>

namespace tessera {

// The variant environment variable `name` names, "v1" .. "v<count>" as 1 .. count; unset or
// empty: `fallback`. Anything else is an Error naming the variable and what it takes.
int kernel_variant(const char* name, int count, int fallback);

// One of the numbers `choices` named by environment variable `name` (or "auto", as 0, where
// `with_auto`); unset or empty: `fallback`. Anything else is an Error listing what it takes.
int env_choice(const char* name, std::initializer_list<int> choices, bool with_auto, int fallback);

}  // namespace tessera
