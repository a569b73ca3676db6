// PCRE2 (UTF + Unicode properties + JIT) pattern, shareable between threads: the compiled code
// is read-only and each thread matches with its own match data and JIT stack.
// \p{..} classes come from PCRE2's Unicode tables (Unicode 14 in PCRE2 10.42): characters
// assigned later count as unassigned here, while `tokenizers` (Oniguruma) may know them.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tessera::tok {

using Span = std::pair<size_t, size_t>;  // [begin, end) byte offsets

class Regex {
 public:
  // Throws tessera::Error naming the pattern and the position of a syntax error.
  explicit Regex(const std::string& pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Non-overlapping, non-empty matches left to right; text must be valid UTF-8.
  void find_all(std::string_view text, std::vector<Span>& out) const;
  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code*, kept out of the header
};

// Matches of a literal string, non-overlapping, left to right.
void find_all_literal(std::string_view text, std::string_view needle, std::vector<Span>& out);

}  // namespace tessera::tok
