// A generation's tokens turned into text as they come, decoding only the last few tokens each
// time, so that the cost per token does not grow with the generation. The pieces it hands out,
// concatenated, are tokenizer.decode(all tokens, skip_special_tokens = true): a trailing incomplete
// UTF-8 character (decoded as U+FFFD) and a run of byte-fallback pieces (<0xNN>, which
// SentencePiece-style decoders turn into text only as a whole) wait for the tokens that end them.
//
// How: the window holds the tokens of the last piece handed out (context, so that a decoder's
// treatment of the first token, such as Metaspace dropping its leading space, falls on them)
// and the tokens not yet handed out; a new piece is the window's text past the context's text.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/tokenizer/tokenizer.h"

namespace tessera::inference {

class Detokenizer {
 public:
  explicit Detokenizer(const tok::Tokenizer& tokenizer) : tokenizer_(tokenizer) {}

  // The text that became final with this token (often empty while a character is incomplete).
  // Throws Error for an id the tokenizer cannot decode.
  std::string push(int32_t token);
  // The end: whatever is still held back, as the whole decode ends.
  std::string flush();

 private:
  const tok::Tokenizer& tokenizer_;
  std::vector<int32_t> window_;  // context tokens, then the tokens not yet handed out
  size_t context_ = 0;           // window_[0, context_) is the context
  std::string context_text_;     // its decoded text
};

}  // namespace tessera::inference
