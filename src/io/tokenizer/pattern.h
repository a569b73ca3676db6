// A tokenizer.json pattern: {"String": "literal"} or {"Regex": "pcre"}.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "io/tokenizer/json_view.h"
#include "io/tokenizer/regex.h"

namespace tessera::tok {

class Pattern {
 public:
  explicit Pattern(const JsonView& j);
  static Pattern literal(std::string s);

  void find_all(std::string_view text, std::vector<Span>& out) const;
  std::string replace_all(std::string_view text, std::string_view content) const;

 private:
  Pattern() = default;
  std::string literal_;
  std::shared_ptr<const Regex> regex_;  // set for Regex patterns
};

}  // namespace tessera::tok
