// Pre-tokenizers of tokenizer.json ("pre_tokenizer"): Split, ByteLevel, Digits, Metaspace,
// Sequence. They cut the normalized text into pieces that the model encodes one by one.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "io/tokenizer/json_view.h"

namespace tessera::tok {

struct Piece {
  std::string text;
  bool at_start;  // begins at offset 0 of the input (Metaspace's prepend_scheme "first")
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual void apply(std::vector<Piece>& pieces) const = 0;
};

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const JsonView& j);

}  // namespace tessera::tok
