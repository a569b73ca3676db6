// Open-addressing hash map from a pair of token ids to (merge rank, merged id): the BPE hot path
// looks pairs up far more often than anything else, and std::unordered_map is slow at it.
#pragma once

#include <cstdint>
#include <vector>

namespace tessera::tok {

class MergeTable {
 public:
  struct Merge {
    int32_t rank;
    int32_t id;
  };

  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    slots_.assign(cap, Slot{kEmpty, {0, 0}});
    mask_ = cap - 1;
  }
  // A later insert of the same pair replaces the earlier one (as a map built from a list does).
  void insert(int32_t a, int32_t b, Merge m) {
    uint64_t key = make_key(a, b);
    for (size_t i = hash(key);; i = (i + 1) & mask_) {
      if (slots_[i].key == kEmpty || slots_[i].key == key) {
        slots_[i] = Slot{key, m};
        return;
      }
    }
  }
  const Merge* find(int32_t a, int32_t b) const {
    uint64_t key = make_key(a, b);
    for (size_t i = hash(key);; i = (i + 1) & mask_) {
      if (slots_[i].key == key) return &slots_[i].merge;
      if (slots_[i].key == kEmpty) return nullptr;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~0ULL;
  struct Slot {
    uint64_t key;
    Merge merge;
  };
  static uint64_t make_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  size_t hash(uint64_t key) const { return static_cast<size_t>((key * 0x9E3779B97F4A7C15ULL) >> 20) & mask_; }

  std::vector<Slot> slots_{16, Slot{kEmpty, {0, 0}}};
  size_t mask_ = 15;
};

}  // namespace tessera::tok
