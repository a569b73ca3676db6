#include "engine/inference/text_stream.h"

#include <algorithm>

namespace tessera::inference {

namespace {

// The part of `held` that can go now and whether a stop string cuts it; `held` keeps the rest
// (the longest tail that is a proper prefix of a stop string; nothing when final or stopped).
TextUpdate release_text(std::string& held, const std::vector<std::string>& stop, bool final) {
  // The earliest stop string (the text sent so far never holds the start of one: see below).
  size_t cut = std::string::npos;
  for (const std::string& s : stop) cut = std::min(cut, held.find(s));
  if (cut != std::string::npos) {
    TextUpdate u{held.substr(0, cut), true};
    held.clear();
    return u;
  }
  size_t keep = 0;
  if (!final)
    for (const std::string& s : stop)
      for (size_t len = std::min(s.size() - 1, held.size()); len > keep; --len)
        if (std::string_view(held).ends_with(std::string_view(s).substr(0, len))) {
          keep = len;
          break;
        }
  TextUpdate u{held.substr(0, held.size() - keep), false};
  held.erase(0, held.size() - keep);
  return u;
}

}  // namespace

TextUpdate TextStream::push(int32_t token, bool final) {
  held_ += detokenizer_.push(token);
  if (final) held_ += detokenizer_.flush();
  return release_text(held_, stop_, final);
}

}  // namespace tessera::inference
