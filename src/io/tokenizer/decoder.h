// Decoders of tokenizer.json ("decoder"): ByteLevel, Metaspace, ByteFallback, Fuse, Strip,
// Replace, Sequence. Each turns the list of token strings into a new list; decode() joins it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "io/tokenizer/json_view.h"

namespace tessera::tok {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void apply(std::vector<std::string>& tokens) const = 0;
};

std::unique_ptr<Decoder> make_decoder(const JsonView& j);

}  // namespace tessera::tok
