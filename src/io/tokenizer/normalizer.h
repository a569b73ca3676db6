// Normalizers of tokenizer.json ("normalizer"): NFC, NFD, NFKC, NFKD, Lowercase, Prepend, Replace,
// Strip, Sequence. Each rewrites one piece of text in place.
#pragma once

#include <memory>
#include <string>

#include "io/tokenizer/json_view.h"

namespace tessera::tok {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void apply(std::string& text) const = 0;
};

// Throws tessera::Error for an unsupported type, naming it and its JSON path.
std::unique_ptr<Normalizer> make_normalizer(const JsonView& j);

}  // namespace tessera::tok
