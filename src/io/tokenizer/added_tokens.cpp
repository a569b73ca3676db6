#include "io/tokenizer/added_tokens.h"

#include <utf8proc.h>

#include <algorithm>

#include "io/tokenizer/utf8.h"

namespace tessera::tok {

namespace {

// Unicode \w as the Rust regex crate defines it (single_word uses it): Alphabetic, marks,
// decimal digits, connector punctuation and the join controls.
bool is_word_char(char32_t c) {
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      // Join controls, and the circled/squared Latin letters that are Alphabetic though So.
      return c == 0x200C || c == 0x200D || (c >= 0x24B6 && c <= 0x24E9) || (c >= 0x1F130 && c <= 0x1F149) ||
             (c >= 0x1F150 && c <= 0x1F169) || (c >= 0x1F170 && c <= 0x1F189);
  }
}

char32_t last_code_point(std::string_view s) {
  size_t b = s.size() - 1;
  while (b > 0 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
  return next_code_point(s, b);
}

}  // namespace

void AddedTokenMatcher::add(const AddedToken& token, std::string pattern) {
  if (pattern.empty()) return;
  auto& bucket = by_first_byte_[static_cast<unsigned char>(pattern[0])];
  entries_.push_back({std::move(pattern), token});
  bucket.push_back(static_cast<uint32_t>(entries_.size() - 1));
  std::stable_sort(bucket.begin(), bucket.end(), [&](uint32_t x, uint32_t y) {
    return entries_[x].pattern.size() > entries_[y].pattern.size();
  });
}

void AddedTokenMatcher::split(std::string_view text, std::vector<TextSegment>& out) const {
  size_t done = 0;  // text before this is already in out
  size_t pos = 0;
  while (pos < text.size()) {
    const Entry* hit = nullptr;
    for (uint32_t k : by_first_byte_[static_cast<unsigned char>(text[pos])]) {
      const std::string& p = entries_[k].pattern;
      if (text.compare(pos, p.size(), p) == 0) {
        hit = &entries_[k];
        break;
      }
    }
    if (!hit) {
      ++pos;
      continue;
    }
    size_t start = pos, stop = pos + hit->pattern.size();
    pos = stop;  // matches never overlap, even when this one is discarded below
    const AddedToken& t = hit->token;
    if (t.single_word) {
      bool word_before = start > 0 && is_word_char(last_code_point(text.substr(0, start)));
      size_t i = stop;
      bool word_after = stop < text.size() && is_word_char(next_code_point(text, i));
      if (word_before || word_after) continue;
    }
    if (t.lstrip) {
      while (start > done) {
        size_t b = start - 1;
        while (b > done && (static_cast<unsigned char>(text[b]) & 0xC0) == 0x80) --b;
        size_t i = b;
        if (!is_whitespace(next_code_point(text, i))) break;
        start = b;
      }
    }
    if (t.rstrip) {
      while (stop < text.size()) {
        size_t i = stop;
        if (!is_whitespace(next_code_point(text, i))) break;
        stop = i;
      }
      pos = stop;
    }
    if (start > done) out.push_back({done, start, -1});
    out.push_back({start, stop, t.id});
    done = stop;
  }
  if (done < text.size()) out.push_back({done, text.size(), -1});
}

}  // namespace tessera::tok
