// A deterministic mutator for the fuzz drivers: the same (seed, index) always makes the same
// mutant, so a failure found in CI replays anywhere from its numbers alone.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tessera::fuzz {

// SplitMix64: small, fast, and good enough to choose mutations.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next();
  uint64_t below(uint64_t n) { return n == 0 ? 0 : next() % n; }  // [0, n)
  bool chance(int percent) { return below(100) < static_cast<uint64_t>(percent); }

 private:
  uint64_t state_;
};

// Mutant `index` of run `seed`: one of the corpus inputs with 1 to 4 stacked mutations among bit
// flips, byte sets, inserts and deletes, truncation, block duplication, splicing with another
// input, decimal numbers replaced by boundary values (0, -1, 2^31, 2^63, 1e308, ...), little-endian
// 4- and 8-byte words replaced by boundary lengths and counts, and format tokens inserted
// (brackets, quotes, YAML anchors, invalid UTF-8). Binary edits favour the first kilobyte, where
// headers and length fields are.
std::string mutant(const std::vector<std::string>& corpus, uint64_t seed, uint64_t index);

}  // namespace tessera::fuzz
