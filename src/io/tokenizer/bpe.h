// BPE model of tokenizer.json ("model": {"type": "BPE"}): rank-ordered merges over the
// characters of one pre-token, with byte fallback, unk fusing, ignore_merges and subword
// prefix/suffix. Results per pre-token are cached per thread, so encode() needs no locks.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "io/tokenizer/json_view.h"
#include "io/tokenizer/merge_table.h"

namespace tessera::tok {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using Vocab = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

class Bpe {
 public:
  explicit Bpe(const JsonView& model);

  // Appends the ids of one pre-token.
  void encode(std::string_view word, std::vector<int32_t>& out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  size_t vocab_entries() const { return vocab_.size(); }
  // Token strings indexed by id; "" for ids the vocabulary does not use.
  const std::vector<std::string>& tokens() const { return id_to_token_; }

 private:
  void merge_word(std::string_view word, std::vector<int32_t>& out) const;

  Vocab vocab_;
  std::vector<std::string> id_to_token_;
  MergeTable merges_;
  std::optional<int32_t> unk_id_;
  std::string prefix_, suffix_;  // continuing_subword_prefix, end_of_word_suffix
  bool byte_fallback_ = false, fuse_unk_ = false, ignore_merges_ = false;
  int32_t byte_ids_[256];  // ids of "<0xNN>" tokens for byte fallback, -1 when absent
  uint64_t uid_;           // identifies this model's entries in the per-thread caches
};

}  // namespace tessera::tok
