#include "engine/inference/text_stream.h"

#include <algorithm>

namespace tessera::inference {

namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

}  // namespace

TextUpdate advance_text(const std::string& text, size_t emitted, const std::vector<std::string>& stop, bool final) {
  emitted = std::min(emitted, text.size());
  // The earliest stop string that starts in the unsent part (a held-back tail never hides one).
  size_t cut = std::string::npos;
  for (const std::string& s : stop) {
    const size_t at = text.find(s, emitted);
    if (at != std::string::npos) cut = std::min(cut, at);
  }
  if (cut != std::string::npos) return {text.substr(emitted, cut - emitted), cut, true};
  size_t safe = text.size();
  if (!final) {
    if (std::string_view(text).ends_with(kReplacement)) safe -= kReplacement.size();
    // The longest tail that is a proper prefix of a stop string waits for the next token.
    const std::string_view head = std::string_view(text).substr(0, safe);
    size_t hold = 0;
    for (const std::string& s : stop)
      for (size_t len = std::min(s.size() - 1, safe - emitted); len > hold; --len)
        if (head.ends_with(std::string_view(s).substr(0, len))) {
          hold = len;
          break;
        }
    safe -= hold;
  }
  safe = std::max(safe, emitted);
  return {text.substr(emitted, safe - emitted), safe, false};
}

}  // namespace tessera::inference
