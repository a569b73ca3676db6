// Streaming a generation's text: each token's new text (Detokenizer), cut before the first stop
// string, holding back a tail that may be the start of one until the next text shows whether it
// is. The cost per token depends on the stop strings' lengths, not on the generation's.
#pragma once

#include <string>
#include <vector>

#include "engine/inference/detokenizer.h"

namespace tessera::inference {

struct TextUpdate {
  std::string text;      // to send now
  bool stopped = false;  // a stop string was found: the text ends before it
};

class TextStream {
 public:
  TextStream(const tok::Tokenizer& tokenizer, std::vector<std::string> stop)
      : detokenizer_(tokenizer), stop_(std::move(stop)) {}

  // The text to send with this token; final: nothing more will come (everything goes, unless a
  // stop string cuts it). Throws Error for an id the tokenizer cannot decode.
  TextUpdate push(int32_t token, bool final);

 private:
  Detokenizer detokenizer_;
  std::vector<std::string> stop_;
  std::string held_;  // decoded, not sent: it may begin a stop string
};

}  // namespace tessera::inference
