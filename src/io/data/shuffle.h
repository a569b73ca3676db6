// A seeded permutation that is the same on every platform and compiler (std::shuffle and the
// standard distributions are not specified exactly enough for that).
#pragma once

#include <cstdint>
#include <vector>

namespace tessera::data {

// A permutation of 0..n-1 from (seed, epoch): Fisher-Yates driven by splitmix64.
std::vector<int64_t> shuffled_order(int64_t n, uint64_t seed, int64_t epoch);

}  // namespace tessera::data
