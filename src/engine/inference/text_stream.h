// Streaming a generation's text: which part of the decoded text so far can be sent, holding back
// a trailing incomplete UTF-8 character (decoded as U+FFFD) and any tail that may be the start of
// a stop string, and cutting the text before the first stop string.
#pragma once

#include <string>
#include <vector>

namespace tessera::inference {

struct TextUpdate {
  std::string text;     // to send now
  size_t emitted = 0;   // bytes of the decoded text sent so far, this included
  bool stopped = false; // a stop string was found: the text ends before it
};

// text: the whole generated text decoded; emitted: bytes already sent; final: nothing more will
// come (send everything, unless a stop string cuts it).
TextUpdate advance_text(const std::string& text, size_t emitted, const std::vector<std::string>& stop, bool final);

}  // namespace tessera::inference
