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

// A byte-fallback piece "<0xNN>": true, with its byte in `byte`. ByteFallback turns a run of them
// into text only as a whole (one U+FFFD per byte when the run is not UTF-8).
bool parse_byte_token(const std::string& t, unsigned char& byte);

}  // namespace tessera::tok
