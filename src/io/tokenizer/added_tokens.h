// Added (and special) tokens: found in the text before normalization and pre-tokenization,
// leftmost match first and the longest one there, honouring lstrip/rstrip/single_word.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::tok {

struct AddedToken {
  std::string content;
  int32_t id = 0;
  bool special = false, lstrip = false, rstrip = false, single_word = false, normalized = false;
};

struct TextSegment {
  size_t begin, end;
  int32_t id;  // the added token's id, or -1 for ordinary text
};

class AddedTokenMatcher {
 public:
  // pattern is what to look for in the text: the content, normalized when the token is.
  void add(const AddedToken& token, std::string pattern);
  bool empty() const { return entries_.empty(); }
  // Appends to out the ordinary text and the added tokens of text, in order, covering it.
  void split(std::string_view text, std::vector<TextSegment>& out) const;

 private:
  struct Entry {
    std::string pattern;
    AddedToken token;
  };
  std::vector<Entry> entries_;
  std::array<std::vector<uint32_t>, 256> by_first_byte_;  // entry indices, longest pattern first
};

}  // namespace tessera::tok
